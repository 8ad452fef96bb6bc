"""Generated ScanNet v2 scenes in the dataset's exact file formats (the embedded default data).

``scenes`` writes rooms laid out like the download; ``layout`` furnishes a room
from the builders in ``objects``; ``mesh`` turns parametric surfaces into a
triangle mesh; ``catalog`` holds the raw categories' label-map rows and colours.
"""
