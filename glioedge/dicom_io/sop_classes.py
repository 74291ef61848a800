"""The SOP classes intake cares about (one home, so discovery and header reading agree)."""

from __future__ import annotations

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
#: SOP classes this package turns into volumes.
IMAGE_SOP_CLASSES = {
    MR_IMAGE_STORAGE: "MR Image Storage",
    ENHANCED_MR_IMAGE_STORAGE: "Enhanced MR Image Storage",
}
#: A DICOMDIR (PS3.10 Media Storage Directory): an index of a file-set, never an image.
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
