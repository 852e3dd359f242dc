"""Reports on memhound snapshots: terminal tables, a self-contained HTML
report and exports (speedscope JSON, collapsed stacks).

>>> from memhound.report import html                        # doctest: +SKIP
>>> html.write_html(html.build_report(["app.snap"]), "report.html")   # doctest: +SKIP
"""
