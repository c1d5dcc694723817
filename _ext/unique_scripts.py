"""Each script once per page.

Sphinx 7.4 (jupyter-book 1 pins Sphinx 7) writes an inline script that an extension adds after the builder
starts (sphinx-thebe's `const THEBE_JS_URL = ...`) twice: it compares the first copy's file name, None, with
the second's, ''. The second `const` is a SyntaxError in every reader's console.
"""


def drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
