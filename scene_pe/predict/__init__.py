"""Prediction on arbitrary scans (tools/predict.py): read any scan, bring it into the model's
frame, segment it (in blocks when large), write per-vertex results, JSON and a picture.

scan.py -> frame.py -> pipeline.py (blocks.py) -> outputs.py, render.py
"""
