"""A single-pair fusion as data. The command line parses its arguments once into a :class:`FuseJob`,
checks it before any work, and runs it in its own process or hands it to the background worker
(:mod:`contrafuse.worker`), which receives the job, not a command line, and runs it with the models
it keeps loaded (a :class:`~contrafuse.methods.MethodCache`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .api import RESIZE_HINT_CLI, fuse_images, read_sources
from .errors import ContrafuseError
from .io import check_output_free, check_output_image, check_writable, write_image
from .methods import create_method


@dataclass(frozen=True)
class FuseJob:
    """Fuse ``ir`` and ``vis`` with ``method`` (and its ``options``) into ``output``."""

    ir: str
    vis: str
    output: str
    method: str
    options: dict = field(default_factory=dict)
    resize: str | None = None
    bits: int = 8
    high_bit_rule: str = "minmax"
    overwrite: bool = False
    register: str | None = None

    def check(self) -> None:
        """Everything that can be known before reading the images: the inputs exist, the output
        type and depth can be written, the output is no input and exists only with ``overwrite``,
        and its folder is writable. One-line errors naming the file."""
        for source in (self.ir, self.vis):
            if not Path(source).exists():
                raise ContrafuseError(source, "file not found")
        check_output_image(self.output, self.bits)
        check_output_free(self.output, (self.ir, self.vis), overwrite=self.overwrite)
        check_writable(self.output)

    def run(self, methods=None) -> Path:
        """Read, fuse and write (atomically); ``methods``: a MethodCache to take the method from."""
        check_output_free(self.output, (self.ir, self.vis), overwrite=self.overwrite)
        first, second = read_sources(self.ir, self.vis, resize=self.resize, high_bit_rule=self.high_bit_rule,
                                     hint=RESIZE_HINT_CLI, register=self.register)
        check_output_image(self.output, self.bits, colour=first.ndim == 3 or second.ndim == 3)
        method = methods.get(self.method, **self.options) if methods is not None else create_method(
            self.method, **self.options)
        fused = fuse_images(first, second, method, (self.ir, self.vis))
        write_image(self.output, fused, bits=self.bits, overwrite=self.overwrite)
        return Path(self.output)

    def to_message(self) -> dict:
        """The job as JSON-ready data (paths as given: the worker runs it in the caller's folder)."""
        return asdict(self)

    @classmethod
    def from_message(cls, message) -> FuseJob:
        """The job a message describes (:meth:`to_message`); ValueError for anything else."""
        names = {f.name for f in fields(cls)}
        if not isinstance(message, dict) or not set(message) <= names or not {"ir", "vis", "output", "method"} <= set(message):
            raise ValueError("not a fusion job")
        if not isinstance(message.get("options", {}), dict):
            raise ValueError("job options must be a mapping")
        return cls(**message)
