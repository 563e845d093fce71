"""Synthetic training images ("Cut, Paste and Learn"), the public face: object crops pasted, rotated and scaled onto
backgrounds, with exact annotations (the boxes and rotated rectangles of what is visible).

    from dsprep.synth import SynthParams, sprite_from_image, synthesize
    car = sprite_from_image(crop_bgra)
    result = synthesize(background, lambda name, rng: car, ["car"], SynthParams(), np.random.default_rng(0))

:class:`SynthParams` holds every choice (canvas, fit, objects per image, rotation, scale, overlap, occlusion, blend,
harmonization); :func:`synthesize` makes one image deterministically for a ``numpy.random.Generator``;
:func:`sprite_from_image`, :func:`transform_sprite`, :func:`place`, :func:`compose`, :func:`plan_fit` /
:func:`apply_fit`, :func:`harmonize` are its steps.  A whole run into a data-set folder is
:func:`dsprep.ops.synth_run.run_synth` (``dsprep synth``).  The implementation is :mod:`dsprep.ops.synth`.
"""
from .ops.synth import (BLENDS, FITS, Fit, Placed, Sprite, SynthParams, SynthResult, apply_fit, canvas_bytes,
                        choose_classes, compose, harmonize, harmonize_luts, overlap_ok, parse_counts, parse_range,
                        parse_weights, place, plan_fit, soften_edges, sprite_from_image, synthesize, transform_sprite)

__all__ = ["BLENDS", "FITS", "Fit", "Placed", "Sprite", "SynthParams", "SynthResult", "apply_fit", "canvas_bytes",
           "choose_classes", "compose", "harmonize", "harmonize_luts", "overlap_ok", "parse_counts", "parse_range",
           "parse_weights", "place", "plan_fit", "soften_edges", "sprite_from_image", "synthesize", "transform_sprite"]
