"""What each command-line tool does once its arguments are parsed (tools/*.py parse them and call one function here).

The top of the package: a command may use every layer below it. Each module
imports torch and MinkowskiEngine only inside its functions, because a tool
must set its CPU thread count before they load (scene_pe/util/threads.py).
"""
