"""Reports: self-contained HTML rendered from stored runs only (never from models or measure).

``effprof.report.page`` is the shared look (shell, CSS, tables, charts); ``render_report`` turns
runs into the profile page ("why is it so cheap?" where the run shows it is).
"""
