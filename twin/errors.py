"""One root exception for the package; subclasses also inherit the matching builtin.

Messages name the input, the place (file, line, gml:id, byte offset) and the way out, so the
command line can print ``str(exc)`` as its one error line.
"""

from __future__ import annotations


class TwinError(Exception):
    """Root of every error this package raises on purpose."""


class InputError(TwinError, ValueError):
    """The input data is wrong or unsupported (bad file, bad geometry, bad value)."""


class FormatError(InputError):
    """A file is not in the format it should be, or is malformed (XML syntax, signature)."""


class UnsafeInputError(InputError):
    """A file uses constructs that are refused for safety (DTDs, external entities)."""


class GeometryError(InputError):
    """Geometry that cannot be used (too few points, non-finite coordinates)."""


class NothingToTile(InputError):
    """The input holds nothing to tile (no objects, no points, or none in the area)."""


class CRSError(TwinError, ValueError):
    """A coordinate reference system is missing, unknown or cannot be transformed exactly."""


class GeoidError(CRSError):
    """Heights need a geoid model that is not available (never fall back silently)."""


class ValidationError(TwinError):
    """Output failed validation (schema, glTF validator, containment)."""


class ToolMissingError(TwinError, RuntimeError):
    """An external tool the task needs (node, npm package, browser) is not installed."""


class SceneError(InputError):
    """A scene definition or overlay file is wrong: names the file, the field and the fix."""

    def __init__(self, file: str, field: str, message: str) -> None:
        self.file = file
        self.field = field
        self.message = message
        place = f"{file}: {field}" if field else file
        super().__init__(f"{place}: {message}")

    def __reduce__(self) -> tuple[type[SceneError], tuple[str, str, str]]:
        # Rebuilt from its parts, so it survives the trip back from a worker process.
        return (type(self), (self.file, self.field, self.message))
