"""Packing a data set into one HDF5 file (or a pickle cache), and the reader a training loop uses.

One module per job: :mod:`.prepare` (an image decoded, fitted, handed over), :mod:`.writers` (the file written),
:mod:`.reader` (:class:`~dsprep.pack.reader.DetectionH5`, what training loops import), :mod:`.shards` (workers
writing whole shard files tied together by a master file) and :mod:`.run` (a whole packing run on the one executor).
Only this package imports h5py.  File layout (one group per split; see docs/packing.md for the full table)::

    /                       attrs: format="dsprep-detection", version=1, classes (JSON list), options (JSON)
    /<split>/images         (N, H, W, 3) uint8 RGB, contiguous (fixed-size mode)
    /<split>/encoded        (B,) uint8: the encoded image files back to back, contiguous (encoded mode)
    /<split>/encoded_offsets (N+1,) int64: image i is encoded[offsets[i]:offsets[i+1]]
    /<split>/boxes          (M, 4) float32 xmin, ymin, xmax, ymax in the stored image's pixels
    /<split>/labels         (M,) int32 index into the class list
    /<split>/difficult      (M,) bool
    /<split>/box_offsets    (N+1,) int64: image i owns boxes[box_offsets[i]:box_offsets[i+1]]
    /<split>/polygons       (M, 4, 2) float32 quadrilaterals in the stored image's pixels (data sets with polygons,
                            such as DOTA, only)
    /<split>/mask_boxes     (M, 4) int32, /<split>/mask_runs (R,) uint32, /<split>/mask_offsets (M+1,) int64: each
                            object's mask as runs over its rectangle of the stored image (data sets with masks only)
    /<split>/orig_size      (N, 2) int32 original width, height
    /<split>/transform      (N, 4) float64 scale_x, scale_y, pad_x, pad_y (stored = original * scale + pad)
    /<split>/filenames      (N,) UTF-8 strings;  /<split>/paths: the source paths
"""
