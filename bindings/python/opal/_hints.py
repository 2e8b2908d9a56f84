"""The "did you mean" tail of opal.torch's errors about names."""
import difflib


def hint(name, candidates):
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f"; did you mean `{close[0]}`?" if close else f"; it has: {', '.join(candidates)}"
