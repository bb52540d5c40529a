"""What a model promises about its shapes, checked: outputs, whole input domains, sizes.

``assertions`` (``assert_output_shape``, with ``attribution`` naming the layer
behind each wrong dimension), ``properties`` (contracts over an input domain,
tested by hypothesis; ``domain`` is that domain as plain data) and ``sizes``
(``min_input_size``, ``linear_in_features``, batch invariance).
"""
