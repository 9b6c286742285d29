"""The report page's figures, as static SVG (matplotlib; imported for HTML only).

- :mod:`.svg`: drawing a figure to SVG, axes that cover the good trials, thinning points;
- :mod:`.trials`: the study's trials (history, importances, intermediate values, top trials);
- :mod:`.params`: params and questions (slices, value by choice, learning curves);
- :mod:`.effects`: answers (effect over training, adjusted curves, interaction plots).
"""
