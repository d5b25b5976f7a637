from dfdetect.models import abnet, clrnet, fakespotter, ftdetect, mesonet, shallownet, xception
from dfdetect.models.base import ClipDetector, FrameDetector
from dfdetect.models.registry import create_net, list_nets, register_net

register_net("meso4")(mesonet.Meso4)
register_net("mesoinception4")(mesonet.MesoInception4)
register_net("xception")(xception.Xception)
register_net("shallownet_v1")(shallownet.ShallowNetV1)
register_net("shallownet_v2")(shallownet.ShallowNetV2)
register_net("shallownet_v3")(shallownet.ShallowNetV3)
register_net("clrnet")(clrnet.CLRNet)
register_net("clrnet_lite")(clrnet.CLRNetLite)
register_net("abnet")(abnet.ABNet)
register_net("fakespotter")(fakespotter.FakeSpotter)
register_net("ftdetect")(ftdetect.FTDetect)

__all__ = ["ClipDetector", "FrameDetector", "create_net", "list_nets", "register_net"]

from dfdetect.models.detector_module import DetectorModule  # noqa: E402

__all__ += ["DetectorModule"]
