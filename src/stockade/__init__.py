"""stockade: host and network intrusion detection and prevention for Linux.

The package follows the data flow of DESIGN.md: ``sensors`` observe, ``detectors`` turn
observations into alerts, ``responders`` act on alerts, and ``store`` keeps everything.
``parts`` wire one subject (files, logs, ...) through that flow; ``daemon`` runs the parts;
``cli`` is the command line.
"""

__version__ = "0.1.0"
