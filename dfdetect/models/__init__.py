from dfdetect.models import mesonet
from dfdetect.models.base import ClipDetector, FrameDetector
from dfdetect.models.registry import create_net, list_nets, register_net

register_net("meso4")(mesonet.Meso4)
register_net("mesoinception4")(mesonet.MesoInception4)

__all__ = ["ClipDetector", "FrameDetector", "create_net", "list_nets", "register_net"]

from dfdetect.models.detector_module import DetectorModule  # noqa: E402

__all__ += ["DetectorModule"]
