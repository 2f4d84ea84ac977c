"""Turn fal's published types into the JSON fixtures tests/providers/test_fal_types.py reads.

Run by hand when fal's types change (the tests never reach the network); the output is
committed next to this script. Two sources:

  ts       fal-js `libs/client/src/types/endpoints.ts` (the generated endpoint types of the
           official JS client, npm `@fal-ai/client`): the input type of each endpoint named,
           every object type it reaches, each field with its TypeScript text, a small schema,
           optional or required, the JSDoc text and default, and its line in the file.
  openapi  a fal queue OpenAPI document (`openapi.json`): the input schema's properties with
           their JSON-Schema limits (enum, minimum, maximum, maxLength) and `required`.

  git --git-dir <fal-js>/.git show <commit>:libs/client/src/types/endpoints.ts \
    | python tests/providers/fal_types/extract_fal_types.py ts --commit <commit> \
        --version <libs/client/package.json version> ENDPOINT_ID... > kling_v3.json

The TypeScript reader covers what the generator emits: `export type Name = <type>;` with
object literals, unions of literals and named types, `Array<T>`, `T[]`, `Record<K, V>`.
Anything else is kept as {"type": "unknown"} with its text, so a test that meets it fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

TS_PATH = "libs/client/src/types/endpoints.ts"
TS_REPO = "fal-ai/fal-js"
MAP_NAME = "EndpointTypeMap"

_TOKEN = re.compile(
    r"""(?P<doc>/\*\*.*?\*/)|(?P<comment>/\*.*?\*/|//[^\n]*)|(?P<ws>\s+)
    |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)
    |(?P<id>[A-Za-z_$][\w$]*)|(?P<punct>=>|[{}<>\[\]()|&;:?,=.])""",
    re.S | re.X,
)


class Tok:
    __slots__ = ("kind", "text", "line", "start", "end")

    def __init__(self, kind, text, line, start, end):
        self.kind, self.text, self.line, self.start, self.end = kind, text, line, start, end

    def __repr__(self):
        return f"{self.kind}:{self.text}@{self.line}"


def tokenize(text: str) -> list[Tok]:
    toks, line, pos = [], 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SyntaxError(f"line {line}: cannot read {text[pos:pos + 40]!r}")
        kind = m.lastgroup
        if kind not in ("ws", "comment"):
            toks.append(Tok(kind, m.group(), line, m.start(), m.end()))
        line += m.group().count("\n")
        pos = m.end()
    return toks


def _doc_text(raw: str) -> str:
    body = raw[3:-2]
    lines = [re.sub(r"^\s*\*\s?", "", ln).rstrip() for ln in body.splitlines()]
    return " ".join(ln.strip() for ln in lines if ln.strip())


class Parser:
    """Recursive descent over the tokens of one `export type` right-hand side."""

    def __init__(self, toks: list[Tok], pos: int, source: str):
        self.toks, self.pos, self.source = toks, pos, source

    def peek(self, text=None):
        tok = self.toks[self.pos]
        return tok if text is None or tok.text == text else None

    def take(self, text=None) -> Tok:
        tok = self.toks[self.pos]
        if text is not None and tok.text != text:
            raise SyntaxError(f"line {tok.line}: expected {text!r}, got {tok.text!r}")
        self.pos += 1
        return tok

    def skip_docs(self) -> str | None:
        doc = None
        while self.toks[self.pos].kind == "doc":
            doc = self.take().text
        return doc

    # type := ['|'] member ('|' member)*   (intersections kept as text)
    def type_(self):
        self.skip_docs()
        start = self.pos
        if self.peek("|"):
            self.take()
        members = [self.postfix()]
        while self.peek("|") or self.peek("&"):
            op = self.take().text
            members.append(self.postfix() if op == "|" else {"type": "unknown", "op": "&"})
        raw = self.source[self.toks[start].start:self.toks[self.pos - 1].end]
        text = re.sub(r"\s+", " ", re.sub(r"/\*.*?\*/", " ", raw, flags=re.S)).strip()
        return _union(members), re.sub(r"^\| ", "", text)

    def postfix(self):
        node = self.primary()
        while self.peek("[") and self.toks[self.pos + 1].text == "]":
            self.take("[")
            self.take("]")
            node = {"type": "array", "items": node}
        return node

    def primary(self):
        tok = self.take()
        if tok.kind == "str":
            return {"type": "string", "enum": [json.loads(_dq(tok.text))]}
        if tok.kind == "num":
            return {"type": "number", "enum": [json.loads(tok.text)]}
        if tok.text == "(":
            node, _ = self.type_()
            self.take(")")
            return node
        if tok.text == "{":
            return self.object_body()
        if tok.kind != "id":
            raise SyntaxError(f"line {tok.line}: unexpected {tok.text!r}")
        args = []
        if self.peek("<"):
            self.take("<")
            args.append(self.type_()[0])
            while self.peek(","):
                self.take(",")
                args.append(self.type_()[0])
            self.take(">")
        name = tok.text
        simple = {"string": "string", "number": "number", "boolean": "boolean",
                  "null": "null", "Blob": "file", "File": "file"}
        if name in simple and not args:
            return {"type": simple[name]}
        if name in ("true", "false"):
            return {"type": "boolean", "enum": [name == "true"]}
        if name == "Array" and len(args) == 1:
            return {"type": "array", "items": args[0]}
        if name == "Record" and len(args) == 2:
            return {"type": "object", "additional": args[1]}
        if args or name in ("any", "unknown", "object"):
            return {"type": "unknown", "ts": name}
        return {"ref": name, "ref_line": None}

    def object_body(self):
        """Fields up to the closing brace: {"type": "object", "fields": {...}}."""
        fields = {}
        while True:
            doc = self.skip_docs()
            if self.peek("}"):
                self.take()
                return {"type": "object", "fields": fields}
            key = self.take()
            if key.text == "[":  # index signature: [key: string]: T
                while not self.peek("]"):
                    self.take()
                self.take("]")
                name = "[index]"
            else:
                name = json.loads(_dq(key.text)) if key.kind == "str" else key.text
            optional = bool(self.peek("?")) and self.take() is not None
            self.take(":")
            schema, text = self.type_()
            if self.peek(";") or self.peek(","):
                self.take()
            field = {"ts": text, "optional": optional, "line": key.line, "schema": schema}
            if doc:
                field["doc"] = _doc_text(doc)
                m = re.search(r"Default value: `(.*?)`", field["doc"])
                if m:
                    try:
                        field["default"] = json.loads(m.group(1))
                    except ValueError:
                        field["default"] = m.group(1)
            fields[name] = field


def _dq(text: str) -> str:
    return text if text.startswith('"') else '"' + text[1:-1].replace('"', '\\"') + '"'


def _union(members):
    """Literal strings of a union merge into one enum; one member stands for itself."""
    literals = [v for m in members if m.get("type") == "string" and "enum" in m for v in m["enum"]]
    others = [m for m in members if not (m.get("type") == "string" and "enum" in m)]
    merged = [{"type": "string", "enum": literals}] if literals else []
    for m in others:
        if m not in merged:
            merged.append(m)
    return merged[0] if len(merged) == 1 else {"any_of": merged}


def read_declarations(toks: list[Tok]) -> dict[str, int]:
    """Name -> token index of the right-hand side of each `export type Name =`."""
    found = {}
    for i in range(len(toks) - 3):
        if (toks[i].text == "export" and toks[i + 1].text == "type"
                and toks[i + 3].text == "="):
            found[toks[i + 2].text] = i + 4
    return found


def extract_ts(text: str, endpoints: list[str]) -> tuple[dict, dict]:
    toks = tokenize(text)
    decls = read_declarations(toks)

    def parse(name):
        parser = Parser(toks, decls[name], text)
        schema, ts = parser.type_()
        return schema, ts, toks[decls[name] - 2].line

    endpoint_map, _, _ = parse(MAP_NAME)
    types: dict[str, dict] = {}

    def resolve(name, chain=()):
        """The object type `name` stands for, following aliases: (final name, aliases)."""
        schema, ts, line = parse(name)
        if "ref" in schema:
            return resolve(schema["ref"], chain + ({"name": name, "line": line, "ts": ts},))
        return name, schema, line, chain

    def collect(schema):
        if "ref" in schema:
            final, body, line, chain = resolve(schema["ref"])
            schema["ref"] = final
            schema.pop("ref_line", None)
            if final not in types:
                types[final] = {"line": line, **body}
                if chain:
                    types[final]["aliases"] = [c["name"] for c in chain]
                for f in body.get("fields", {}).values():
                    collect(f["schema"])
        for key in ("items", "additional"):
            if key in schema:
                collect(schema[key])
        for member in schema.get("any_of", ()):
            collect(member)

    out = {}
    for endpoint in endpoints:
        entry = endpoint_map["fields"].get(endpoint)
        if entry is None:
            raise SystemExit(f"{endpoint} is not in {MAP_NAME}")
        declared = entry["schema"]["fields"]["input"]["schema"]["ref"]
        final, body, line, chain = resolve(declared)
        collect({"ref": final})
        out[endpoint] = {
            "map_line": entry["line"],
            "input": declared,
            "input_line": toks[decls[declared] - 2].line,
            "alias_of": [c["name"] for c in chain[1:]] + ([final] if chain else []),
            "type": final,
        }
    return out, dict(sorted(types.items()))


def extract_openapi(doc: dict) -> dict:
    """The request-body schema of the queue POST with $refs resolved one level into items."""
    schemas = doc["components"]["schemas"]

    def deref(node):
        ref = node.get("$ref")
        return schemas[ref.rsplit("/", 1)[1]] if ref else node

    def limits(prop):
        keep = ("type", "enum", "minimum", "maximum", "maxLength", "minLength", "maxItems",
                "minItems", "default")
        out = {k: prop[k] for k in keep if k in prop}
        if "items" in prop:
            item = deref(prop["items"])
            out["items"] = ({"name": prop["items"]["$ref"].rsplit("/", 1)[1],
                             **obj(item)} if "$ref" in prop["items"] else limits(item))
        return out

    def obj(schema):
        return {"type": "object", "required": schema.get("required", []),
                "properties": {k: limits(v) for k, v in schema["properties"].items()}}

    result = {}
    for path, ops in doc["paths"].items():
        body = ops.get("post", {}).get("requestBody")
        if body:
            ref = body["content"]["application/json"]["schema"]["$ref"]
            name = ref.rsplit("/", 1)[1]
            result[path.lstrip("/")] = {"schema": name, **obj(schemas[name])}
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    ts = sub.add_parser("ts")
    ts.add_argument("endpoints", nargs="+")
    ts.add_argument("--commit", required=True)
    ts.add_argument("--version", required=True, help="@fal-ai/client version at that commit")
    ts.add_argument("--blob", help="git blob id of endpoints.ts at that commit")
    oa = sub.add_parser("openapi")
    oa.add_argument("--repo", required=True)
    oa.add_argument("--commit", required=True)
    oa.add_argument("--path", required=True)
    oa.add_argument("--blob")
    args = ap.parse_args(argv)
    text = sys.stdin.read()
    if args.mode == "ts":
        endpoints, types = extract_ts(text, args.endpoints)
        source = {"package": "@fal-ai/client", "version": args.version, "repo": TS_REPO,
                  "commit": args.commit, "path": TS_PATH, "blob": args.blob,
                  "map": MAP_NAME}
        command = (f"git --git-dir <fal-js>/.git show {args.commit}:{TS_PATH} | python "
                   "tests/providers/fal_types/extract_fal_types.py ts --commit "
                   f"{args.commit} --version {args.version} --blob {args.blob} "
                   + " ".join(args.endpoints))
        out = {"source": source, "generated_by": command, "endpoints": endpoints,
               "types": types}
    else:
        source = {"repo": args.repo, "commit": args.commit, "path": args.path,
                  "blob": args.blob}
        command = (f"git --git-dir <{args.repo.split('/')[1]}>/.git show "
                   f"{args.commit}:{args.path} | python tests/providers/fal_types/"
                   f"extract_fal_types.py openapi --repo {args.repo} --commit {args.commit} "
                   f"--path {args.path} --blob {args.blob}")
        doc = json.loads(text)
        out = {"source": source, "generated_by": command, "title": doc["info"]["title"],
               "endpoints": extract_openapi(doc)}
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
