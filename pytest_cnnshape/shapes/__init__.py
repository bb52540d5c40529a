"""Shapes as data: shape trees, the shape-spec parser, and matching expected outputs.

The bottom layer of the package (above ``errors`` and ``arith``): plain Python,
no torch. ``tree`` turns whatever a module takes or returns into shapes,
``spec`` reads the shapes users write (``"B x 3 x H x W"``), ``expected`` binds
symbolic inputs and compares an output with what was expected.
"""
