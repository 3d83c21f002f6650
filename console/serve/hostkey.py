"""The SSH host key: made once (ed25519, 0600) and kept, so clients' known_hosts keep trusting it.

Written through console.safefs like every file Berth keeps: never through a symbolic link, never into
a directory others can write, replaced atomically. A key file others can read is tightened to 0600
(it is a secret, as sshd insists); one that is a link, someone else's, or writable by others is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.safefs import StateDir, StateFileError
from console.serve.config import _asyncssh


def load_or_create(path: Path) -> tuple[Any, bool]:
    """The host key at ``path`` (an asyncssh SSHKey) and whether it was made now."""
    asyncssh = _asyncssh()
    where = StateDir(path.parent)
    data = where.read(path.name)
    if data is None:
        key = asyncssh.generate_private_key("ssh-ed25519", comment="berth serve host key")
        where.replace(path.name, key.export_private_key("openssh"), mode=0o600)
        where.replace(path.name + ".pub", key.export_public_key("openssh"), mode=0o644)
        return key, True
    where.check_file(path.name)  # tightens a private key others could read to 0600
    try:
        return asyncssh.import_private_key(data), False
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise StateFileError(path, f"is not an SSH private key ({exc}): move it away to have a new one made") \
            from None


def fingerprint(key: Any) -> str:
    return str(key.get_fingerprint("sha256"))
