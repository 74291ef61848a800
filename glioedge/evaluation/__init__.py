"""``glioedge evaluate``: compare predictions with a site's reference segmentations.

Finds and pairs the cases (:mod:`.inputs`: BraTS-named NIfTI label maps, or DICOM studies with
DICOM-SEGs matched by study), puts both on one grid in physical space (:mod:`.grid`), scores them
with :mod:`glioedge.metrics` and writes the per-case table, the summary and the picture
(:mod:`.report`, :mod:`.figure`). The command itself is :mod:`.command`. Torch-free.

May import: the ground floor, ``metrics``, ``data``, ``dicom_io``, ``progress``
(``tests/test_architecture.py``).
"""
