"""A tiny shell: enough of bash for the commands admins and runbooks type.

Supports `;`, `&&`, `||`, newlines, `|`, `>`, `>>`, `<`, `2>&1`, `2>/dev/null`, here-documents
(`cat > f <<EOF`), `$VAR` expansion and `for v in a b; do ...; done`. Quoting follows shlex.
"""

import io
import re
import shlex

OPERATORS = {";", "&&", "||", "|"}
REDIRECTS = {">", ">>", "<", "2>", "2>>", "2>&1", ">&2", "<<"}
ERR_TO_OUT = "\x00ERR2OUT"
OUT_TO_ERR = "\x00OUT2ERR"
ERR_TO = "\x00ERRTO"
ERR_APPEND = "\x00ERRAPPEND"


class ShellSyntaxError(Exception):
    pass


def extract_heredocs(text):
    """Replace `<<MARK` bodies by placeholders; returns (text, bodies)."""
    lines = text.split("\n")
    out, bodies = [], []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        marks = re.findall(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        for mark in marks:
            body = []
            while i < len(lines) and lines[i].strip() != mark:
                body.append(lines[i])
                i += 1
            i += 1
            bodies.append("\n".join(body) + "\n")
            line = re.sub(r"<<-?\s*['\"]?" + mark + r"['\"]?", f"<< \x00HEREDOC{len(bodies) - 1}",
                          line, count=1)
        out.append(line)
    return "\n".join(out), bodies


LITERAL_DOLLAR = "\x00DOLLAR"


def protect_single_quoted(text):
    """bash expands nothing between single quotes: hide their `$` from expand()."""
    out, quote, i = [], None, 0
    while i < len(text):
        c = text[i]
        if quote is None and c == "\\" and i + 1 < len(text):
            out.append(text[i:i + 2])
            i += 2
            continue
        if c in "'\"" and quote in (None, c):
            quote = None if quote else c
        out.append(LITERAL_DOLLAR if c == "$" and quote == "'" else c)
        i += 1
    return "".join(out)


def tokenize(text):
    text = protect_single_quoted(text)
    text = re.sub(r"(^|\s)2>&1", r"\1 " + ERR_TO_OUT + " ", text)
    text = re.sub(r"(^|\s)1?>&2", r"\1 " + OUT_TO_ERR + " ", text)
    text = re.sub(r"(^|\s)2>>", r"\1 " + ERR_APPEND + " ", text)
    text = re.sub(r"(^|\s)2>", r"\1 " + ERR_TO + " ", text)
    lexer = shlex.shlex(text.replace("\n", " ; "), posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise ShellSyntaxError(f"syntax error: {exc}") from None
    return [{ERR_TO_OUT: "2>&1", OUT_TO_ERR: ">&2", ERR_TO: "2>", ERR_APPEND: "2>>"}.get(t, t)
            for t in tokens]


def parse(text):
    """-> list of (op, pipeline) where op joins it to the previous one."""
    text, bodies = extract_heredocs(text)
    tokens = tokenize(text)
    node, rest = parse_list(tokens, bodies, stop=())
    if rest:
        raise ShellSyntaxError(f"syntax error near unexpected token `{rest[0]}'")
    return node


def parse_list(tokens, bodies, stop):
    items = []
    op = ";"
    while tokens and tokens[0] not in stop:
        if tokens[0] == ";":
            tokens = tokens[1:]
            continue
        pipeline, tokens = parse_pipeline(tokens, bodies, stop)
        items.append((op, pipeline))
        op = ";"
        if tokens and tokens[0] in ("&&", "||", ";"):
            op = tokens[0]
            tokens = tokens[1:]
            if op != ";" and (not tokens or tokens[0] in stop):
                raise ShellSyntaxError("syntax error: unexpected end of file")
    return items, tokens


def parse_pipeline(tokens, bodies, stop):
    commands = []
    while True:
        command, tokens = parse_command(tokens, bodies, stop)
        commands.append(command)
        if tokens and tokens[0] == "|":
            tokens = tokens[1:]
            continue
        return commands, tokens


def parse_command(tokens, bodies, stop):
    if tokens and tokens[0] == "for":
        if len(tokens) < 3 or tokens[2] != "in":
            raise ShellSyntaxError("syntax error near `for'")
        var = tokens[1]
        i = 3
        words = []
        while i < len(tokens) and tokens[i] not in (";", "do"):
            words.append(tokens[i])
            i += 1
        while i < len(tokens) and tokens[i] == ";":
            i += 1
        if i >= len(tokens) or tokens[i] != "do":
            raise ShellSyntaxError("syntax error near `for': expected `do'")
        body, rest = parse_list(tokens[i + 1:], bodies, stop=("done",))
        if not rest:
            raise ShellSyntaxError("syntax error: unexpected end of file (missing `done')")
        return {"for": var, "words": words, "body": body}, rest[1:]
    words, redirs = [], []
    while tokens and tokens[0] not in OPERATORS and tokens[0] not in stop:
        token = tokens[0]
        if token in REDIRECTS:
            if token in ("2>&1", ">&2"):
                redirs.append((token, None))
                tokens = tokens[1:]
                continue
            if len(tokens) < 2:
                raise ShellSyntaxError("syntax error near unexpected token `newline'")
            target = tokens[1]
            if token == "<<":
                target = bodies[int(target.replace("\x00HEREDOC", ""))]
            redirs.append((token, target))
            tokens = tokens[2:]
            continue
        words.append(token)
        tokens = tokens[1:]
    if not words and not redirs:
        raise ShellSyntaxError(f"syntax error near unexpected token `{tokens[0] if tokens else 'newline'}'")
    return {"words": words, "redirs": redirs}, tokens


def expand(word, env):
    word = re.sub(r"\$\{(\w+|\?)\}|\$(\w+|\?)",
                  lambda m: str(env.get(m.group(1) or m.group(2), "")), word)
    return word.replace(LITERAL_DOLLAR, "$")


class StringInput:
    """stdin fed from a pipe, a file or a here-document."""

    def __init__(self, text):
        self._buf = io.StringIO(text)

    async def readline(self):
        return self._buf.readline()

    async def read(self):
        return self._buf.read()


class Buffer:
    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)

    def text(self):
        return "".join(self.parts)


class Shell:
    """Runs parsed command lines against one machine. `commands` maps argv[0] -> async fn."""

    def __init__(self, session, commands):
        self.session = session
        self.commands = commands
        self.env = {"?": 0, "HOME": "/root", "USER": "root"}

    async def run(self, text):
        try:
            tree = parse(text)
        except ShellSyntaxError as exc:
            self.session.stderr.write(f"bash: {exc}\n")
            return 2
        return await self.run_list(tree, self.session.stdin, self.session.stdout,
                                   self.session.stderr)

    async def run_list(self, items, stdin, stdout, stderr):
        rc = self.env["?"]
        for op, pipeline in items:
            if op == "&&" and rc != 0 or op == "||" and rc == 0:
                continue
            rc = await self.run_pipeline(pipeline, stdin, stdout, stderr)
            self.env["?"] = rc
        return rc

    async def run_pipeline(self, commands, stdin, stdout, stderr):
        rc = 0
        for i, command in enumerate(commands):
            last = i == len(commands) - 1
            sink = stdout if last else Buffer()
            rc = await self.run_command(command, stdin, sink, stderr)
            if not last:
                stdin = StringInput(sink.text())
        return rc

    async def run_command(self, command, stdin, stdout, stderr):
        if "for" in command:
            rc = 0
            for word in command["words"]:
                self.env[command["for"]] = expand(word, self.env)
                rc = await self.run_list(command["body"], stdin, stdout, stderr)
            return rc
        words = [expand(w, self.env) for w in command["words"]]
        out_file = err_file = None
        for kind, target in command["redirs"]:
            if kind not in ("<<", "2>&1", ">&2"):
                target = expand(target, self.env)
            if kind in (">", ">>"):
                out_file = (target, kind == ">>", Buffer())
            elif kind in ("2>", "2>>"):
                err_file = (target, kind == "2>>", Buffer())
            elif kind == "2>&1":
                err_file = ("&1", False, None)
            elif kind == ">&2":
                out_file = ("&2", False, None)
            elif kind == "<":
                text = self.session.machine.files.get(target)
                if text is None:
                    stderr.write(f"bash: {target}: No such file or directory\n")
                    return 1
                stdin = StringInput(text)
            elif kind == "<<":
                stdin = StringInput(target)
        if out_file and out_file[0] == "&2":
            out = stderr
        else:
            out = out_file[2] if out_file else stdout
        if err_file and err_file[0] == "&1":
            err = out
        elif err_file:
            err = err_file[2]
        else:
            err = stderr
        if not words:
            rc = 0
        else:
            rc = await self.session.execute(words, stdin, out, err)
        for spec in (out_file, err_file):
            if spec and spec[2] is not None:
                self.write_file(spec[0], spec[2].text(), spec[1], stderr)
        return rc

    def write_file(self, path, text, append, stderr):
        if path == "/dev/null":
            return
        if not path.startswith("/"):
            path = "/root/" + path
        files = self.session.machine.files
        files[path] = (files.get(path, "") if append else "") + text
