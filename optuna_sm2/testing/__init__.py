"""Fakes of hardware this machine may lack, behaving like the documented real thing.

``fake_pynvml`` stands in for NVIDIA's ``pynvml`` module, ``fake_powercap`` builds a Linux
powercap (RAPL) tree in a folder. For tests of optuna-sm2 and of code built on it.
"""
