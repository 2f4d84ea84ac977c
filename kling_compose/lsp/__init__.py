"""`kling-compose lsp`: a language server for storyboards (issue 27), over stdio.

It runs `validate`'s stages on the text the editor holds (unsaved edits included, and the
unsaved text of an included template) with the project file's variables, and publishes every
error and warning on the file that holds it; it completes, explains (hover), finds
definitions and references, and fixes what a hint spells out exactly. It never writes into the
project, never reads a key and never asks the network (docs/editors.md).

    analysis.py   one look at a storyboard: the stages, kept as far as they got
    text.py       where the cursor is in the YAML the user wrote (no parser: half-typed text)
    fields.py     the field names the JSON Schema allows at a place
    features.py   completion, hover, definition, references, code actions
    server.py     the pygls server: documents, debounce, publishing
    command.py    the click command
"""
