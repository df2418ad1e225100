"""Service settings from environment variables with the prefix ``TWIN_`` (pydantic-settings).

List values are JSON in the environment (``TWIN_PACKAGES='["a.3dtiles"]'``,
``TWIN_CORS_ORIGINS='["https://example.org"]'``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service can be told; defaults serve ``build/scenes`` on one machine."""

    model_config = SettingsConfigDict(env_prefix="TWIN_", extra="ignore")

    scenes_dir: Path = Path("build/scenes")
    """Published scene folders (``<scenes_dir>/<id>/current -> versions/<version>``)."""
    packages: list[Path] = []
    """Single-file scene packages (``.3dtiles``) served as scenes; scene id = file stem."""
    database_url: str = "sqlite:///build/twin.sqlite3"
    """The planners' project store: ``sqlite:///path`` or ``postgresql://…``."""
    write_tokens: str = ""
    """Comma-separated ``sha256:<hex>`` hashes of the bearer tokens allowed to write."""
    write_tokens_file: Path | None = None
    """A secret file with one ``sha256:<hex>`` hash per line."""
    cors_origins: list[str] = []
    """Origins allowed to read cross-origin (``*`` for any); empty: same origin only."""
    max_body_bytes: int = 1_000_000
    """Largest request body accepted (413 above)."""
    tile_cache_bytes: int = Field(default=268_435_456, ge=0)
    """Bytes of published files (and their compressed forms) kept in memory per worker."""
    current_check_seconds: float = Field(default=1.0, ge=0.0)
    """How often the published scenes (``current`` links, packages) are looked at again, in the
    background: a republished scene is served within about this long after the swap; 0 looks
    before every lookup (for tests)."""
