"""The small text corpus the tiny test tokenizer is trained on.

Bundled as a string so building the tiny model needs no download and gives the
same tokenizer on every machine. It mixes what an agent's conversations hold:
Python code, shell commands, diffs, test output, chat prose and tool-call JSON.
Changing it changes every tiny model's vocabulary (the cache key includes it).
"""

CORPUS = r'''
You are a helpful assistant that fixes bugs in Python repositories.
The user reports an issue; read the code, run the tests, make a minimal edit, and submit.
Use the bash tool to run commands and the str_replace_editor tool to view and edit files.
When the tests pass, call the submit tool.

<tool_call>
{"name": "bash", "arguments": {"command": "ls -la /testbed"}}
</tool_call>
<tool_call>
{"name": "bash", "arguments": {"command": "python -m pytest tests/test_core.py -x -q"}}
</tool_call>
<tool_call>
{"name": "str_replace_editor", "arguments": {"command": "view", "path": "/testbed/src/toolz/itertoolz.py"}}
</tool_call>
<tool_call>
{"name": "str_replace_editor", "arguments": {"command": "str_replace", "path": "/testbed/setup.py", "old_str": "return x", "new_str": "return x + 1"}}
</tool_call>
<tool_call>
{"name": "submit", "arguments": {}}
</tool_call>
<tool_response>
============================= test session starts ==============================
collected 12 items

tests/test_core.py ..........F.                                          [100%]

=================================== FAILURES ===================================
______________________________ test_merge_sorted _______________________________
    def test_merge_sorted():
>       assert list(merge_sorted([1, 3], [2, 4])) == [1, 2, 3, 4]
E       AssertionError: assert [1, 3, 2, 4] == [1, 2, 3, 4]
========================= 1 failed, 11 passed in 0.12s =========================
</tool_response>

def merge_sorted(*seqs, key=None):
    """Merge and sort a collection of sorted collections."""
    if len(seqs) == 0:
        return iter([])
    elif len(seqs) == 1:
        return iter(seqs[0])
    if key is None:
        return _merge_sorted_binary(seqs)
    return _merge_sorted_binary_key(seqs, key)


class Environment:
    def __init__(self, name: str, timeout: float = 60.0) -> None:
        self.name = name
        self.timeout = timeout

    def run(self, command: str) -> dict[str, object]:
        result = subprocess.run(command, shell=True, capture_output=True, text=True)
        return {"output": result.stdout + result.stderr, "exit_code": result.returncode}


import json
import os
from pathlib import Path

for path in sorted(Path(".").rglob("*.py")):
    text = path.read_text(encoding="utf-8")
    if "TODO" in text:
        print(f"{path}: {text.count('TODO')} todo items")

try:
    data = json.loads(raw)
except json.JSONDecodeError as exc:
    raise ValueError(f"bad JSON at line {exc.lineno}: {exc.msg}") from exc

diff --git a/toolz/itertoolz.py b/toolz/itertoolz.py
index 3c5d2f1..9a8b7e4 100644
--- a/toolz/itertoolz.py
+++ b/toolz/itertoolz.py
@@ -10,7 +10,7 @@ def first(seq):
     """The first element in a sequence."""
-    return next(iter(seq))
+    return next(iter(seq), None)

$ git status
On branch main
Changes not staged for commit:
  modified:   toolz/itertoolz.py
$ cat README.md | head -20
$ grep -rn "def frequencies" toolz/
toolz/itertoolz.py:512:def frequencies(seq):
$ pip install -e . && python -c "import toolz; print(toolz.__version__)"
Traceback (most recent call last):
  File "<stdin>", line 1, in <module>
KeyError: 'missing'
TypeError: unsupported operand type(s) for +: 'int' and 'str'
IndexError: list index out of range

The function returns the wrong value when the input list is empty. I will add a
check for the empty case and a test that covers it. Then I will run the whole
test suite again to make sure nothing else broke. The fix is one line long.
Thank you! The tests now pass. Here is a summary of the change I made.

{"type": "function", "function": {"name": "bash", "description": "Run a shell command in the repository.", "parameters": {"type": "object", "properties": {"command": {"type": "string", "description": "The command to run."}}, "required": ["command"]}}}
{"type": "function", "function": {"name": "submit", "description": "Submit the current changes as the final patch.", "parameters": {"type": "object", "properties": {}}}}

# Tools

You may call one or more functions to assist with the user query.
For each function call, return a json object with function name and arguments.
0 1 2 3 4 5 6 7 8 9 10 42 100 256 1024 3.14 True False None self return yield lambda
if else elif while for in not and or is with as def class import from pass break continue
'''
