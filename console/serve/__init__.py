"""`berth serve`: one poller, one set of actions and one audit log for a whole team.

People come in through front doors (``ssh`` here; a browser door can reuse ``session``), each as an
``Identity`` decided by the door (for SSH: the public key). Every interactive session is a full
console (``console.ui.app.BerthApp``) on its own thread and event loop, fed from the one shared
poller; every intent carries the session's identity into ``console.actions``, which refuses a
viewer there and writes the identity into the audit log.

Nothing in the core imports this package: it sits above ``console.ui``.
"""
