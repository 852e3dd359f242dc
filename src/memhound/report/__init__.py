"""Reports on memhound snapshots: terminal tables, a self-contained HTML
report and exports (speedscope JSON, collapsed stacks).

>>> from memhound.report import html, export, terminal
>>> terminal.format_size(1536)
'1.5 KiB'
>>> html.write_html(html.build_report(["app.snap"]), "report.html")   # doctest: +SKIP
"""
