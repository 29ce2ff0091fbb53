"""Zero-shot pre-labels: an open-vocabulary model whose classes are the project's own labels.

``LABELSTACK_SEG_MODEL=yoloe`` serves YOLOE-seg: its classes are the label names of the
config's segmentation tags plus their ``predicted_values`` aliases ("Dress", "Handbag" are
prompts, not COCO classes), set through YOLOE's own ``set_classes(names, embeddings)``. The
text embeddings come from its text encoder (MobileCLIP's ``mobileclip_blt.ts``, a file like
the weights), once per label set: they are kept under ``MODEL_DIR/zero-shot/`` and one
model per label set is kept in memory. A project with a fine-tuned version is served by that
version instead (:mod:`.versions`).

``LABELSTACK_SEG_MODEL=sam3`` names SAM 3's concept predictor; it needs SAM 3's weights and
the ``clip`` package, and the backend stops at start saying which is missing.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from labelstack_backend import runtime
from labelstack_backend.errors import ModelLoadError
from labelstack_backend.labelconfig import LabelConfig
from labelstack_backend.registry.store import file_digest, safe_name
from labelstack_backend.settings import Settings
from labelstack_backend.yolo.model import SegmentationModel
from labelstack_common.contract import Env, SegModel

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

TEXT_ENCODER_FILE = "mobileclip_blt.ts"  # what YOLOE's text_model "mobileclip:blt" loads
DEFAULT_CONFIG = "yoloe-11s-seg.yaml"  # the demo's random YOLOE-seg
MAX_LABEL_SETS = 4  # models kept in memory, one per label set
CONTEXT_LENGTH = 77  # CLIP's tokens per text

#: Label names -> their text features, (len(names), dim), before YOLOE's own text head.
TextEmbedder = Callable[[Sequence[str]], "torch.Tensor"]


def vocabulary(config: LabelConfig, control_types: Sequence[str]) -> tuple[str, ...]:
    """The classes of a label config: each label of the tags a model fills, then its aliases,
    in config order, each once (case-insensitively)."""
    seen: set[str] = set()
    names: list[str] = []
    for control in config.controls_of(control_types):
        if not control.predicts:
            continue
        for label in control.labels:
            for name in label.names():
                if name.strip() and name.casefold() not in seen:
                    seen.add(name.casefold())
                    names.append(name)
    return tuple(names)


def label_set_key(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class ZeroShotWeights:
    """The open-vocabulary model and its text encoder, checked at start."""

    source: str  # a weights file, or a config (random, demo)
    name: str  # version name of the model itself, e.g. "yoloe-11s-seg-1a2b3c4d"
    text_encoder: Path | None  # None: demo text features (random weights only)


def zero_shot_weights(settings: Settings) -> ZeroShotWeights:
    """Where YOLOE and its text encoder come from; :class:`ModelLoadError` naming the exact
    file when they cannot work (nothing is downloaded)."""
    if settings.seg_model is SegModel.SAM3:
        raise ModelLoadError(sam3_unavailable(settings))
    encoder = _text_encoder_path(settings)
    if settings.seg_weights:
        path = runtime.weights_file(settings.seg_weights, Env.SEG_WEIGHTS)
        if encoder is None or not encoder.is_file():
            raise ModelLoadError(
                f"{Env.SEG_MODEL}=yoloe needs YOLOE's text encoder, {encoder or TEXT_ENCODER_FILE} "
                f"(MobileCLIP, {TEXT_ENCODER_FILE}), which does not exist: put it beside the weights or "
                f"point {Env.TEXT_ENCODER} at it; nothing is downloaded"
            )
        return ZeroShotWeights(str(path), f"{safe_name(path.stem)}-{file_digest(path)}", encoder)
    if settings.demo_model:
        cfg = settings.seg_model_config if "yoloe" in settings.seg_model_config else DEFAULT_CONFIG
        if encoder is not None and not encoder.is_file():
            raise ModelLoadError(f"{Env.TEXT_ENCODER}={encoder} does not exist or is not a file")
        return ZeroShotWeights(cfg, safe_name(Path(cfg).stem) + "-random", encoder)
    raise ModelLoadError(
        f"no YOLOE weights: {Env.SEG_MODEL}=yoloe needs {Env.SEG_WEIGHTS} (yoloe-11s-seg.pt, "
        f"yoloe-v8l-seg.pt...) and its text encoder {TEXT_ENCODER_FILE} beside it or at {Env.TEXT_ENCODER}, "
        f"or {Env.DEMO_MODEL}=1 for a randomly initialised model (demos and tests only)"
    )


def _text_encoder_path(settings: Settings) -> Path | None:
    if settings.text_encoder:
        return Path(settings.text_encoder).expanduser()
    if settings.seg_weights:
        return Path(settings.seg_weights).expanduser().parent / TEXT_ENCODER_FILE
    return None


def sam3_unavailable(settings: Settings) -> str:
    """Why SAM 3 cannot serve here: what of its weights and dependencies is missing."""
    missing = []
    if not settings.seg_weights or not Path(settings.seg_weights).expanduser().is_file():
        missing.append(f"its weights (sam3.pt) at {Env.SEG_WEIGHTS}")
    try:
        importlib.import_module("clip")  # SAM 3's builder imports it (ultralytics installs it from git)
    except Exception as exc:
        missing.append(
            f"the clip package its tokenizer comes from (import clip: {type(exc).__name__}: {exc})"
        )
    reason = "; ".join(missing) if missing else "its concept predictor is not wired into this backend yet"
    return (
        f"{Env.SEG_MODEL}=sam3 cannot start: {reason}. Use {Env.SEG_MODEL}=yoloe for zero-shot "
        "pre-labels (docs/architecture.md, 'Zero-shot pre-labels')"
    )


class DemoText:
    """Text features of random weights' demo: a fixed random unit vector per name (seeded by
    the name), of the encoder's dimension. As meaningless as the random model they go with."""

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def __call__(self, names: Sequence[str]) -> torch.Tensor:
        import torch

        rows = []
        for name in names:
            gen = torch.Generator().manual_seed(int(hashlib.sha256(name.encode()).hexdigest()[:15], 16))
            rows.append(torch.randn(self.dim, generator=gen))
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


class MobileClipText:
    """MobileCLIP's TorchScript text encoder from a path, as ultralytics' ``MobileCLIPTS`` runs
    it (which would download it by name instead)."""

    def __init__(self, path: Path, device: str) -> None:
        import torch

        try:
            self.encoder = torch.jit.load(str(path), map_location=device).eval()  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise ModelLoadError(
                f"could not read the text encoder {path}: {type(exc).__name__}: {exc}"
            ) from None
        self.tokenizer = clip_tokenizer()
        self.device = device

    def __call__(self, names: Sequence[str]) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            feats = self.encoder(tokenize(self.tokenizer, names).to(self.device)).float()
        return torch.nn.functional.normalize(feats, dim=-1)


def tokenize(tokenizer: Any, names: Sequence[str]) -> torch.Tensor:
    """CLIP's tokens, as ``clip.tokenize(truncate=True)`` makes them: start, the BPE of the
    text, end (the last token when truncated), zero padding to 77."""
    import torch

    sot, eot = tokenizer.encoder["<|startoftext|>"], tokenizer.encoder["<|endoftext|>"]
    out = torch.zeros(len(names), CONTEXT_LENGTH, dtype=torch.int32)
    for i, name in enumerate(names):
        tokens = [sot, *tokenizer.encode(name)[: CONTEXT_LENGTH - 2], eot]
        out[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.int32)
    return out


def clip_tokenizer() -> Any:
    """CLIP's BPE tokenizer with its vocabulary, from the ``clip`` package's files (clip-anytorch).

    Read from its file, not imported: the package's ``__init__`` imports ``pkg_resources``,
    which setuptools 81 removed, while the tokenizer needs only ftfy and regex."""
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("YOLOE's text encoder needs CLIP's tokenizer: install clip-anytorch")
    path = Path(next(iter(spec.submodule_search_locations))) / "simple_tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("labelstack_clip_tokenizer", path)
    if module_spec is None or module_spec.loader is None:
        raise ModelLoadError(f"no CLIP tokenizer at {path}")
    module: ModuleType = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SimpleTokenizer()


def _yoloe_class() -> type[Any]:
    from ultralytics import YOLOE
    from ultralytics.engine.model import Model

    class RawYOLOE(YOLOE):  # type: ignore[misc]
        """YOLOE whose ``predict`` honours ``predictor=`` for text prompts (YOLOE's own drops it,
        and :meth:`SegmentationModel.forward` passes the predictor that stops before masks)."""

        def predict(
            self, source: Any = None, stream: bool = False, predictor: Any = None, **kwargs: Any
        ) -> Any:
            kwargs.setdefault("agnostic_nms", True)  # YOLOE's default: a label and its alias, one object
            return Model.predict(self, source, stream, predictor=predictor, **kwargs)

    return RawYOLOE


class ZeroShot:
    """YOLOE-seg with one set of classes per label set; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        *,
        text: TextEmbedder | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.weights = zero_shot_weights(settings)  # fails the boot when they cannot work
        self.device = runtime.resolve_device(settings.device)
        self.half = runtime.use_half(self.device, settings.half)
        self.cache_dir = cache_dir or settings.model_dir_resolved / "zero-shot" / self.weights.name
        self.base: SegmentationModel | None = None
        self._text = text
        self._models: OrderedDict[tuple[str, ...], SegmentationModel] = OrderedDict()
        self._projects: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()

    def load(self) -> SegmentationModel:
        """YOLOE and its text encoder (slow: at start, in the background)."""
        runtime.prepare_ultralytics()
        import torch

        started = time.monotonic()
        if self.weights.source.endswith((".yaml", ".yml")):
            torch.manual_seed(0)  # the same random demo model in every process
        try:
            yolo = _yoloe_class()(self.weights.source, task="segment")
        except Exception as exc:
            raise ModelLoadError(
                f"could not load YOLOE {self.weights.source}: {type(exc).__name__}: {exc}"
            ) from None
        if self._text is None:
            if self.weights.text_encoder is not None:
                self._text = MobileClipText(self.weights.text_encoder, self.device)
            else:
                log.warning(
                    "%s=1: YOLOE's classes get random text features (demos and tests only)", Env.DEMO_MODEL
                )
                self._text = DemoText(int(yolo.model.model[-1].embed))
        self.base = SegmentationModel(yolo, self.weights.name, self.device, self.half, self.settings.imgsz)
        log.info(
            "loaded zero-shot %s (%s) in %.1fs",
            self.weights.name,
            self.weights.source,
            time.monotonic() - started,
        )
        return self.base

    def version(self, names: Sequence[str]) -> str:
        return f"{self.weights.name}-labels-{label_set_key(names)}"

    def version_for(self, project: str | None) -> str:
        """The version a project's zero-shot predictions carry: its label set's, once seen."""
        names = self._projects.get(project or "")
        return self.version(names) if names else self.weights.name

    def model_for(self, names: Sequence[str], project: str | None = None) -> SegmentationModel:
        """The model whose classes are ``names``, built once per label set (its text embeddings
        from the disk cache, or computed and kept there)."""
        key = tuple(names)
        if project:
            self._projects[project] = key
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        with self._build_lock:  # one build at a time: they share the text encoder
            with self._lock:
                if key in self._models:
                    return self._models[key]
            model = self._build(key)
            with self._lock:
                self._models[key] = model
                while len(self._models) > MAX_LABEL_SETS:
                    self._models.popitem(last=False)
            return model

    def _build(self, names: tuple[str, ...]) -> SegmentationModel:
        base = self.base
        if base is None or self._text is None:
            raise ModelLoadError("the zero-shot model is not loaded yet")
        if not names:
            raise ModelLoadError("a label config without labels gives an open-vocabulary model no classes")
        yolo = copy.copy(base.yolo)
        yolo.model = copy.deepcopy(base.yolo.model)
        yolo.predictor = None
        yolo.set_classes(list(names), self.embeddings(names))
        log.info("zero-shot classes for label set %s: %s", label_set_key(names), ", ".join(names))
        return SegmentationModel(yolo, self.version(names), base.device, base.half, base.imgsz)

    def embeddings(self, names: Sequence[str]) -> torch.Tensor:
        """YOLOE's class embeddings of ``names`` (1, n, dim): its text head over the encoder's
        features, cached on disk per label set."""
        import torch

        assert self.base is not None and self._text is not None
        path = self.cache_dir / f"{label_set_key(names)}.pt"
        if path.is_file():
            try:
                cached = torch.load(path, map_location="cpu", weights_only=True)
                if cached.get("names") == list(names):
                    stored: torch.Tensor = cached["embeddings"]
                    return stored.to(self.device)
            except Exception as exc:  # unreadable or partial: compute again
                log.warning("ignoring the cached text embeddings %s: %s", path, exc)
        head = self.base.yolo.model.model[-1]
        param = next(head.parameters())
        with torch.inference_mode():
            feats = self._text(names).to(param.device, param.dtype).reshape(1, len(names), -1)
            embeddings: torch.Tensor = head.get_tpe(feats).detach().clone()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{threading.get_ident()}.tmp")
        torch.save({"names": list(names), "embeddings": embeddings.cpu()}, partial)
        partial.replace(path)  # readers see the whole file or none
        return embeddings
