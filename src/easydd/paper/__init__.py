"""The paper's analyses, the floor above the library: built on easydd, never imported by it (tests/test_layout.py).

    theory/     the teacher-student simulation of data pruning and distillation (``easydd theory``)
    study/      the selection and difficulty studies on real data (``easydd study``)
    report.py   finished runs and results files -> the paper-style table (``easydd report``)
    records.py  what report.py reads: run directories and results files -> ``Record``s

Each analysis keeps its command-line arguments beside its code (``add_arguments`` / ``run_from_args``; in the
package's ``command.py`` for theory/ and study/, re-exported by the package); the ``easydd`` command finds them
through its PLUGINS table. Import a module by its path, e.g.
``from easydd.paper import report``.
"""
