"""The metric Space's app (when this folder is pushed to the Hub as a Space): evaluate's standard Gradio widget."""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget


module = evaluate.load(str(Path(__file__).resolve().parent))
launch_gradio_widget(module)
