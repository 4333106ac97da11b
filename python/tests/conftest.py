"""Lets the test modules import `support` (the shared helpers) under `--import-mode=importlib`,
which puts no test directory on sys.path; `kindred` still resolves to the installed package."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
