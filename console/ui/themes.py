"""Themes live in `themes/`: one TOML palette per theme, plus `berth.tcss` (only $variables).

From a source checkout that is `<repo>/themes`; from an installed wheel it is
`console/_themes` (pyproject force-includes it). `BERTH_THEMES_DIR` overrides
both, for operators who keep their own palettes.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from textual.theme import Theme

DEFAULT_THEME = "dark"
CYCLE = ("dark", "light", "noc")

# App-specific variables and their defaults (the dark palette), so any Textual
# theme chosen from the palette still renders Berth's semantic colours.
VARIABLE_DEFAULTS: dict[str, str] = {
    "density-ok": "#3fd17a",
    "density-warm": "#f2c94c",
    "density-hot": "#ff5f56",
    "stale": "#c792ea",
    "alert-critical": "#ff5f56",
    "alert-warning": "#f2c94c",
    "alert-info": "#7fb4ff",
    "badge-iso": "#ff9f43",
    "badge-busy": "#4ea1ff",
    "spark": "#7fb4ff",
    "muted": "#8b98a5",  # dim table text; an opaque colour, because partial cell styles cannot blend alpha
    # Opaque, not "$primary 35%": a blend of ANSI colours is not an ANSI colour, and the contrast
    # test (tests/ui/test_contrast.py) must see the colour that is drawn.
    "title-focus-background": "#254569",
    "title-focus-foreground": "#d8dee9",
    "alert-strip-alerting": "#362429",  # the alert strip while a critical alert is open
    "alert-strip-critical": "#ff5f56",  # critical marks and counts on that strip
}
_THEME_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground", "background",
                 "surface", "panel", "boost", "dark", "luminosity_spread", "text_alpha", "ansi")


def themes_dir() -> Path:
    override = os.environ.get("BERTH_THEMES_DIR")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent.parent  # console/
    for candidate in (package / "_themes", package.parent / "themes"):
        if (candidate / "berth.tcss").is_file():
            return candidate
    raise FileNotFoundError(f"Berth themes not found in {package / '_themes'} or {package.parent / 'themes'}")


def css_path() -> Path:
    return themes_dir() / "berth.tcss"


def load_theme(path: Path) -> Theme:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    fields = {k: data[k] for k in _THEME_FIELDS if k in data}
    variables = {str(k): str(v) for k, v in data.get("variables", {}).items()}
    return Theme(name=str(data.get("name", path.stem)), variables=variables, **fields)


def load_themes(directory: Path | None = None) -> dict[str, Theme]:
    directory = directory or themes_dir()
    themes = {}
    for path in sorted(directory.glob("*.toml")):
        theme = load_theme(path)
        themes[theme.name] = theme
    return themes
