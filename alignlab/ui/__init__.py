"""Front ends over the engine: JupyterLab widgets (``alignlab.ui.notebook``), the Gradio app
(``alignlab.ui.gradio``) and the plotly figures both draw (``alignlab.ui.figures``).

Everything here needs the optional extras (``pip install alignlab[notebook]`` or ``alignlab[app]``);
the engine outside ``alignlab/ui/`` never imports these packages.
"""
