"""Model specs: everything about a pretrained fusion model in one declarative YAML file.

``contrafuse/models/<name>.yaml`` declares a model: its network (a type in
:data:`contrafuse.nn.NETWORKS` and the constructor's arguments), its weights (a file shipped in the
package, or an official URL pinned to a commit with sha256, size and licence), the paper, and each
inference protocol it supports as data (:class:`Protocol`). The generic runners in
:mod:`contrafuse.methods.learned` (PyTorch) and :mod:`contrafuse.methods.onnx` (ONNX Runtime)
execute a spec; tiling, the CLI, the web app, the benchmark runner and the packaging script read it.
Adding a pretrained network is one network module plus one spec (README, "Extending").

    >>> from contrafuse.models import MODEL_SPECS
    >>> MODEL_SPECS["clfnet"].protocols["authors"].stretch
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from ..errors import ContrafuseError
from ..io import RECOLOUR_RULES
from ..precision import PRECISIONS
from ..schema import Key, check_keys, check_list

SPEC_FOLDER = Path(__file__).resolve().parent

#: YAML schema of a spec's top level, its ``weights``, ``paper``, ``tiling`` and each protocol
SPEC_KEYS = {
    "description": Key(str, required=True),
    "network": Key(dict, required=True),
    "weights": Key(dict, required=True),
    "extra_weights": Key(list),
    "paper": Key(dict, required=True),
    "protocols": Key(dict, required=True),
    "default_protocol": Key(str, required=True),
    "parameters": Key(int, required=True, minimum=1),
    "tiling": Key(dict),
    "channels_last": Key(str, choices=("always", "bf16", "never")),
    "functional_first": Key(bool),
    "auto_precision": Key(str, choices=tuple(p for p in PRECISIONS if p != "auto")),
    "min_side": Key(int, minimum=1),
}
WEIGHTS_KEYS = {
    "file": Key(str, required=True),
    "sha256": Key(str),
    "bytes": Key(int, minimum=1),
    "url": Key(str),
    "source": Key(str, required=True),
    "licence": Key(str, required=True),
    "card": Key(str),
    "stored": Key(str, choices=("float32", "float16")),
    "key": Key(str),
}
PAPER_KEYS = {"title": Key(str, required=True), "authors": Key(str, required=True),
              "venue": Key(str, required=True), "year": Key(int, required=True, minimum=1990)}
TILING_KEYS = {"halo": Key((int, str), required=True), "bytes_per_pixel": Key((int, float), required=True, minimum=1),
               "whole_image_statistics": Key(bool), "exact": Key(bool)}
PROTOCOL_KEYS = {
    "description": Key(str, required=True),
    "channels": Key(int, choices=(1, 3)),
    "order": Key(list),
    "grey_8bit": Key(str, choices=("none", "round", "floor")),
    "grey_read": Key(str, choices=("rgb", "jpeg_luma")),
    "input_stretch": Key(bool),
    "input_range": Key(list),
    "mean": Key(list),
    "std": Key(list),
    "batchnorm": Key(str, choices=("running", "image")),
    "border": Key((int, str)),
    "multiple": Key(int, minimum=1),
    "output_range": Key(list),
    "stretch": Key(bool),
    "output_8bit": Key(str, choices=("none", "floor", "round", "wrap")),
    "when_colour": Key(dict),
    "recolour": Key(str, choices=tuple(RECOLOUR_RULES)),
}
#: the steps outside the network call, which ``when_colour`` may set differently for colour sources
COLOUR_KEYS = ("grey_8bit", "input_stretch", "stretch", "output_8bit")


@dataclass(frozen=True)
class Protocol:
    """How a model is run: what it is fed, how the image is framed, what is done to its output.

    Every step is data, executed by :mod:`contrafuse.methods.learned`; the steps inside the network
    call (input mapping, normalisation, output mapping) are baked into an ONNX export, the others are
    written into its metadata.
    """
    name: str
    description: str
    #: 1: grey inputs (colour is fused on Y, chroma re-attached); 3: RGB inputs, the network fuses colour
    channels: int = 1
    #: which source the network takes first: ``[first, second]`` (infrared first) or ``[second, first]``
    order: tuple[str, str] = ("first", "second")
    #: the grey inputs as 8-bit levels, as scripts that read uint8 luma see them: ``round`` (PIL ``L``,
    #: OpenCV), ``floor`` (a float luma cast to uint8), or ``none``
    grey_8bit: str = "none"
    #: where a grey network's input comes from for a colour source: ``rgb``, its decoded RGB (as
    #: ``grey_8bit`` says); ``jpeg_luma``, for a colour JPEG file, the luma plane its decoder gives when
    #: asked for grey (libjpeg, as OpenCV's ``imread(path, IMREAD_GRAYSCALE)``; other sources: ``rgb``)
    grey_read: str = "rgb"
    #: per-image min-max stretch of each input to [0, 1] before anything else (e.g. LRRNet's script)
    input_stretch: bool = False
    #: [0, 1] mapped linearly onto this range, then ``(x - mean) / std`` per channel
    input_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    #: BatchNorm statistics: the running ones, or those of the image being fused (train mode)
    batchnorm: str = "running"
    #: reflected border added around the inputs and cropped from the result (pixels, or ``receptive``:
    #: the network's reach, so that no zero padding touches the result)
    border: int | str = 0
    #: the network needs sides that are a multiple of this (reflect-padded, cropped back)
    multiple: int = 1
    #: the range of the network's output, mapped linearly back onto [0, 1], then clipped to it
    output_range: tuple[float, float] = (0.0, 1.0)
    #: per-image min-max stretch of the result to [0, 1] (e.g. ``scipy.misc.imsave`` of a float image)
    stretch: bool = False
    #: the official script's 8-bit output: ``floor`` (``astype(uint8)``), ``round``, ``wrap`` (an unclipped
    #: ``astype(uint8)``: values outside [0, 1] wrap modulo 256, as NumPy's cast does), or ``none`` (float)
    output_8bit: str = "none"
    #: how the fused Y gets a colour source's chroma back (:func:`contrafuse.io.ycbcr_to_rgb`'s rule)
    recolour: str = "keep_luma"
    #: the protocol the official script follows when a source is colour (set from ``when_colour``:
    #: other 8-bit rounding, for example); None: the same
    colour: Protocol | None = None

    def as_dict(self) -> dict:
        return {k: (v.as_dict() if isinstance(v, Protocol) else list(v) if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class WeightsSource:
    """A weights file: shipped in the package (no ``url``) or fetched from ``url`` and checked by sha256."""
    file: str
    source: str
    licence: str
    sha256: str | None = None
    bytes: int | None = None
    url: str | None = None
    card: str | None = None
    #: how the package stores a shipped file (float16 halves it; it loads back into float32)
    stored: str = "float32"
    #: where the file's tensors go in the network's state dict: a prefix for a state dict
    #: (``context.``), the tensor's name for a single array (``.npy``); empty: as they are
    key: str = ""

    @property
    def packaged(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    network: str
    network_args: dict
    weights: WeightsSource
    paper: dict
    parameters: int
    protocols: dict[str, Protocol]
    default_protocol: str
    halo: int | str = 0
    bytes_per_pixel: float = 1000.0
    #: some layer looks at the whole image whatever the protocol (e.g. CoCoNet's Gram matrices)
    whole_image_statistics: bool = False
    #: tiles reproduce the whole-image result (False: a global operation the tiler cannot share,
    #: or a resampling grid tied to the image size; such a model never tiles)
    tile_exact: bool = True
    channels_last: str = "never"
    #: what ``--precision auto`` may use where bfloat16 is native: ``fp32`` for a model whose result
    #: bfloat16 moves too far (benchmarks/results/zoo_speed.json)
    auto_precision: str = "bf16"
    #: the smallest side the network runs on (its own reflection padding needs 2, each 2x2 pooling
    #: doubles it); smaller images are padded to it and cropped back
    min_side: int = 2
    #: the first source is the functional (pseudo-colour PET/SPECT) image: a colour second source
    #: beside a grey first one is refused as swapped
    functional_first: bool = False
    #: further files a network loads from (e.g. LUT-Fuse's look-up table beside its context network)
    extra_weights: tuple[WeightsSource, ...] = ()
    source_file: Path = field(default=Path(), compare=False)

    @property
    def weight_files(self) -> tuple[WeightsSource, ...]:
        return (self.weights, *self.extra_weights)

    @property
    def citation(self) -> str:
        p = self.paper
        return f"{p['authors']}, {p['title']}, {p['venue']} {p['year']}"


def _pair(value, where: str, path: Path) -> tuple:
    values = check_list(value, where, path, (int, float))
    if len(values) != 2 or values[0] >= values[1]:
        raise ContrafuseError(path, f"{where} must be [low, high] with low < high, not {value!r}")
    return tuple(float(v) for v in values)


def _protocol(name: str, values: dict, path: Path) -> Protocol:
    where = f"protocols.{name}."
    if not isinstance(values, dict):
        raise ContrafuseError(path, f"{where[:-1]} must be a mapping")
    check_keys(PROTOCOL_KEYS, values, where, path)
    args = dict(values)
    if "order" in args:
        args["order"] = tuple(check_list(args["order"], where + "order", path, (str,), choices=("first", "second")))
        if sorted(args["order"]) != ["first", "second"]:
            raise ContrafuseError(path, f"{where}order must name first and second once each")
    for key in ("input_range", "output_range"):
        if key in args:
            args[key] = _pair(args[key], where + key, path)
    channels = args.get("channels", 1)
    for key in ("mean", "std"):
        if key in args:
            args[key] = tuple(float(v) for v in check_list(args[key], where + key, path, (int, float)))
            if len(args[key]) != channels:
                raise ContrafuseError(path, f"{where}{key} needs one value per channel ({channels})")
    if isinstance(args.get("border"), str) and args["border"] != "receptive":
        raise ContrafuseError(path, f"{where}border must be a number of pixels or 'receptive'")
    colour = args.pop("when_colour", None)
    protocol = Protocol(name=name, **args)
    if colour is not None:
        other = sorted(set(colour) - set(COLOUR_KEYS))
        if other:
            raise ContrafuseError(path, f"{where}when_colour may set only {', '.join(COLOUR_KEYS)}, not {other[0]!r}")
        overridden = {k: v for k, v in {**values, **colour}.items() if k != "when_colour"}
        protocol = replace(protocol, colour=_protocol(name, overridden, path))
    return protocol


def load_spec(path: str | Path) -> ModelSpec:
    """Read and validate one spec file (errors name the file and the key)."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ContrafuseError(path, f"cannot read model spec ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ContrafuseError(path, "a model spec must be a mapping")
    check_keys(SPEC_KEYS, values, "", path)
    network = dict(values["network"])
    if not isinstance(network.get("type"), str):
        raise ContrafuseError(path, "network.type must name a network")
    sources = []
    for where, entry in [("weights.", values["weights"]),
                         *((f"extra_weights[{i}].", e) for i, e in enumerate(values.get("extra_weights", [])))]:
        if not isinstance(entry, dict):
            raise ContrafuseError(path, f"{where[:-1]} must be a mapping")
        check_keys(WEIGHTS_KEYS, entry, where, path)
        sources.append(WeightsSource(**entry))
        if sources[-1].url and not (sources[-1].sha256 and sources[-1].bytes):
            raise ContrafuseError(path, f"{where[:-1]}: weights fetched from a url need sha256 and bytes")
    weights, *extra_weights = sources
    check_keys(PAPER_KEYS, values["paper"], "paper.", path)
    tiling = values.get("tiling", {})
    check_keys(TILING_KEYS, tiling, "tiling.", path)
    if isinstance(tiling.get("halo"), str) and tiling["halo"] != "receptive":
        raise ContrafuseError(path, "tiling.halo must be a number of pixels or 'receptive'")
    protocols = {name: _protocol(name, p, path) for name, p in values["protocols"].items()}
    if values["default_protocol"] not in protocols:
        raise ContrafuseError(path, f"default_protocol {values['default_protocol']!r} is not among the protocols "
                              f"({', '.join(protocols)})")
    return ModelSpec(
        name=path.stem, description=values["description"], network=network.pop("type"), network_args=network,
        weights=weights, paper=values["paper"], parameters=values["parameters"], protocols=protocols,
        default_protocol=values["default_protocol"], halo=tiling.get("halo", 0),
        bytes_per_pixel=float(tiling.get("bytes_per_pixel", 1000.0)),
        whole_image_statistics=tiling.get("whole_image_statistics", False), tile_exact=tiling.get("exact", True),
        channels_last=values.get("channels_last", "never"), functional_first=values.get("functional_first", False),
        auto_precision=values.get("auto_precision", "bf16"), min_side=values.get("min_side", 2),
        extra_weights=tuple(extra_weights), source_file=path)


def load_specs(folder: Path = SPEC_FOLDER) -> dict[str, ModelSpec]:
    """Every spec in ``folder``, by name (the file's stem), in alphabetical order."""
    return {spec.name: spec for spec in map(load_spec, sorted(folder.glob("*.yaml")))}


#: the shipped models' specs
MODEL_SPECS: dict[str, ModelSpec] = load_specs()
