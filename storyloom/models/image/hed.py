"""The HED soft-edge annotator: the control image the HED ControlNet was trained on.

controlnet_aux ships the network (lllyasviel's Apache-2.0 re-implementation of HED, weights
``ControlNetHED.pth`` in ``lllyasviel/Annotators``) and its pre- and post-processing. We read the
weights ourselves so that only ``torch.load(weights_only=True)`` ever touches the file, like every other
weights file here, and hand the loaded network to controlnet_aux's ``HEDdetector``.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from storyloom.errors import ModelUnavailable

if TYPE_CHECKING:
    from storyloom.config import Config
    from storyloom.models.runtime.loading import ModelCache

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "ControlNetHED.pth"
# controlnet_aux rounds both sides of the picture it detects on to multiples of 64.
DETECT_GRID = 64


def hed_classes() -> tuple[type, type]:
    """``(HEDdetector, ControlNetHED_Apache2)``, imported on first use.

    Importing any part of controlnet_aux runs its package ``__init__``, which imports every detector it has
    (timm, scikit-image, OpenCV: a few seconds) and warns about optional packages and deprecated APIs
    that the HED detector never touches; those import-time warnings are silenced here and only here."""
    with warnings.catch_warnings():
        for category in (FutureWarning, UserWarning, DeprecationWarning):
            warnings.simplefilter("ignore", category)
        from controlnet_aux.hed import ControlNetHED_Apache2, HEDdetector
    return HEDdetector, ControlNetHED_Apache2


def weights_path(name: str, *, build_tiny: bool) -> Path:
    """The weights file for a configured name: ``owner/repo/file`` on the hub, a local file, or a local
    directory holding ``ControlNetHED.pth`` (the layout ``HEDdetector.from_pretrained`` reads)."""
    from storyloom.models.runtime.loading import resolve_source

    path = Path(resolve_source(name, build_tiny=build_tiny))
    return path / WEIGHTS_FILE if path.is_dir() else path


def load_network(path: Path) -> Any:
    """``ControlNetHED_Apache2`` in float32 with the weights at ``path`` (stored in any float precision)."""
    _, network_class = hed_classes()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        # weights_only refuses anything but tensors and plain containers with UnpicklingError.
        raise ModelUnavailable(
            f"HED annotator weights {path.name!r} could not be read ({type(exc).__name__})"
        ) from None
    network = network_class()
    try:
        network.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ModelUnavailable(
            f"HED annotator weights {path.name!r} do not fit the HED network ({type(exc).__name__})"
        ) from None
    # HEDdetector feeds float32 pixels, so the network stays float32 whatever the pipeline's dtype.
    return network.float().eval()


class HedAnnotator:
    """Picture → white-on-black HED soft edges of the same size (RGB, three equal channels)."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    @classmethod
    def from_config(cls, config: Config, cache: ModelCache | None = None, *, device: torch.device) -> HedAnnotator:
        """Load ``config.models.hed_annotator`` on ``device`` (the pipeline's: controlnet_aux moves the input to
        the network's device), shared through ``cache``."""
        name = config.models.hed_annotator

        def load() -> Any:
            path = weights_path(name, build_tiny=config.models.build_tiny)
            detector_class, _ = hed_classes()
            detector = detector_class(load_network(path)).to(device)
            logger.info("loaded HED annotator %s on %s", name, device)
            return detector

        detector = load() if cache is None else cache.get(("hed_annotator", name, str(device)), load)
        return cls(detector)

    @property
    def device(self) -> torch.device:
        return next(self.detector.netNetwork.parameters()).device

    def __call__(self, image: Image.Image) -> Image.Image:
        """Detect at the picture's own resolution, so the edges are as thin as the HED ControlNet saw in
        training at its size; controlnet_aux works on a 64-pixel grid, so the map is brought back to the
        exact size afterwards (a no-op when both sides are multiples of 64)."""
        resolution = max(DETECT_GRID, min(image.size))
        edges = self.detector(
            image.convert("RGB"), detect_resolution=resolution, image_resolution=resolution, output_type="pil"
        )
        if edges.size != image.size:
            edges = edges.resize(image.size, Image.Resampling.BILINEAR)
        return edges
