"""The Fountain parser of `kling-compose import` (kling_compose/commands/fountain.py) on the
examples of the Fountain 1.1 syntax page, https://fountain.io/syntax (the section each comes
from is named), and on the inputs that would make a careless parser slow or wrong."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kling_compose.commands.fountain import parse, plain


def kinds(text: str) -> list[tuple[str, str]]:
    return [(e.kind, e.text) for e in parse(text).elements]


# -- Scene Headings ---------------------------------------------------------------------------

def test_scene_heading_spec_example():
    # fountain.io/syntax, "Scene Headings"
    text = ("EXT. BRICK'S PATIO - DAY\n\nA gorgeous day.  The sun is shining.  But BRICK "
            "BRADDOCK, retired police detective, is sitting quietly, contemplating -- "
            "something.\n")
    assert kinds(text) == [
        ("scene_heading", "EXT. BRICK'S PATIO - DAY"),
        ("action", "A gorgeous day.  The sun is shining.  But BRICK BRADDOCK, retired police "
                   "detective, is sitting quietly, contemplating -- something."),
    ]


@pytest.mark.parametrize("line", [
    "INT. HOUSE - DAY", "EXT. HOUSE - DAY", "EST. HOUSE - DAY", "INT./EXT. HOUSE - DAY",
    "INT/EXT HOUSE - DAY", "I/E HOUSE - DAY", "int. house - day", "INT HOUSE - DAY",
    "ext house - night"])
def test_every_prefix_with_a_dot_or_a_space_in_any_case(line):
    # "Scene Headings": INT, EXT, EST, INT./EXT, INT/EXT, I/E, followed by a dot or a space;
    # "Case insensitive"
    assert kinds(f"\n{line}\n\nAction.\n")[0] == ("scene_heading", line)


@pytest.mark.parametrize("line", ["INTERNAL AFFAIRS INVESTIGATES.", "EXTRA! EXTRA!",
                                  "Interior design is a career."])
def test_a_word_that_starts_with_a_prefix_is_not_a_heading(line):
    assert kinds(f"{line}\n")[0][0] == "action"


def test_a_heading_needs_a_blank_line_after_it():
    # "A Scene Heading is any line that has a blank line following it"
    assert kinds("Int. house - day\nSome action here.\n") == [
        ("action", "Int. house - day\nSome action here.")]
    # in capitals, the same lines are a cue and its dialogue, as the spec's rules read
    assert [k for k, _ in kinds("INT. HOUSE - DAY\nSome action here.\n")] == [
        "character", "dialogue"]


def test_forced_scene_heading_and_the_ellipsis_that_is_not_one():
    # "Scene Headings": "You can "force" a Scene Heading by starting the line with a single
    # period" ... "only a single leading period followed by an alphanumeric character"
    text = (".SNIPER SCOPE POV\n\nFrom what seems like only INCHES AWAY.  _Steel's face "
            "FILLS the *Leupold Mark 4* scope_.\n\n...and then nothing.\n")
    elements = parse(text).elements
    assert [(e.kind, e.text, e.forced) for e in elements] == [
        ("scene_heading", "SNIPER SCOPE POV", True),
        ("action", "From what seems like only INCHES AWAY.  Steel's face FILLS the Leupold "
                   "Mark 4 scope.", False),
        ("action", "...and then nothing.", False),
    ]


@pytest.mark.parametrize("heading, number", [
    ("INT. HOUSE - DAY #1#", "1"), ("INT. HOUSE - DAY #1A#", "1A"),
    ("INT. HOUSE - DAY #1a#", "1a"), ("INT. HOUSE - DAY #A1#", "A1"),
    ("INT. HOUSE - DAY #I-1-A#", "I-1-A"), ("INT. HOUSE - DAY #1.#", "1."),
    ("INT. HOUSE - DAY - FLASHBACK (1944) #110A#", "110A")])
def test_scene_numbers(heading, number):
    # "Scene Headings", scene numbers: "any alphanumerics (plus dashes and periods), wrapped
    # in #"
    (first, _) = parse(f"{heading}\n\nAction.\n").elements
    assert first.kind == "scene_heading" and first.number == number
    assert first.text == heading[:heading.index(" #")]


# -- Action -----------------------------------------------------------------------------------

def test_action_paragraphs_keep_their_line_breaks():
    # "Action": "They drink long and well from the beers. / And then there's a long beat..."
    text = ("They drink long and well from the beers.\n\nAnd then there's a long beat.\n"
            "Longer than is funny.\nLong enough to be depressing.\n\nThe men look at each "
            "other.\n")
    assert kinds(text) == [
        ("action", "They drink long and well from the beers."),
        ("action", "And then there's a long beat.\nLonger than is funny.\n"
                   "Long enough to be depressing."),
        ("action", "The men look at each other."),
    ]


def test_forced_action():
    # "Action": "You can force an Action element can by preceding it with an exclamation
    # point !" (an uppercase line followed by another would be Character and Dialogue)
    text = "\n!SCANNING THE AISLES...\nWhere is that pit boss?\n\nNo luck.\n"
    elements = parse(text).elements
    assert [(e.kind, e.text) for e in elements] == [
        ("action", "SCANNING THE AISLES...\nWhere is that pit boss?"),
        ("action", "No luck."),
    ]
    assert elements[0].forced
    # without the `!`, the same two lines are a cue and its dialogue
    assert [k for k, _ in kinds("\nSCANNING THE AISLES...\nWhere is that pit boss?\n")] == \
        ["character", "dialogue"]


def test_tabs_and_spaces_are_kept_in_action_and_tabs_are_four_spaces():
    # "Indenting": "Tabs and spaces are retained in Action elements ... Tabs are converted to
    # four spaces."
    text = "\tScott exasperated.\n          He picks up the phone.\n"
    assert kinds(text) == [("action", "    Scott exasperated.\n          He picks up the "
                                      "phone.")]


# -- Character --------------------------------------------------------------------------------

def test_character_and_dialogue():
    # "Character": "STEEL / The man's a myth!"
    assert kinds("\nSTEEL\nThe man's a myth!\n") == [("character", "STEEL"),
                                                    ("dialogue", "The man's a myth!")]


def test_character_extensions_may_be_lower_case():
    # "Character": "HANS (on the radio) / What was it you said?"; "MOM (O. S.)"
    hans, said = parse("\nHANS (on the radio)\nWhat was it you said?\n").elements
    assert (hans.kind, hans.name, hans.extensions) == ("character", "HANS", ("on the radio",))
    assert (said.kind, said.text, said.name) == ("dialogue", "What was it you said?", "HANS")
    (mom, _) = parse("\nMOM (O. S.)\nLuke! Come down for supper!\n").elements
    assert (mom.name, mom.extensions) == ("MOM", ("O. S.",))
    (v_o, _) = parse("\nMARA (V.O.) (CONT'D)\nStill here.\n").elements
    assert (v_o.name, v_o.extensions) == ("MARA", ("V.O.", "CONT'D"))


def test_forced_character_keeps_its_case():
    # "Character": "@McCLANE / Yippie ki-yay! I got my lower-case C back!"
    (cue, line) = parse("\n@McCLANE\nYippie ki-yay! I got my lower-case C back!\n").elements
    assert (cue.kind, cue.name, cue.forced) == ("character", "McCLANE", True)
    assert line.kind == "dialogue"
    (cue, _) = parse("\n@黒澤\nこんにちは\n").elements  # a name without case: forced
    assert cue.name == "黒澤"
    assert kinds("\n黒澤\nこんにちは\n") == [("action", "黒澤\nこんにちは")]


@pytest.mark.parametrize("name, is_cue", [("R2D2", True), ("23", False), ("MR. SMITH", True),
                                          ("O'BRIEN", True), ("JEAN-CLAUDE", True),
                                          ("DEALER #2", True), ("Steel", False)])
def test_a_character_needs_a_letter_and_no_lower_case(name, is_cue):
    # "Character": "Character names must include at least one alphabetical character.
    # "R2D2" works, but "23" does not."
    assert (kinds(f"\n{name}\nHello.\n")[0][0] == "character") is is_cue


def test_a_cue_needs_a_blank_line_before_and_text_after():
    # "A Character element is any line entirely in uppercase, with one empty line before it
    # and without an empty line after it."
    assert kinds("Action.\nSTEEL\nHello.\n") == [("action", "Action.\nSTEEL\nHello.")]
    assert kinds("\nSTEEL\n\nHe walks away.\n") == [("action", "STEEL"),
                                                   ("action", "He walks away.")]


# -- Dialogue and Parenthetical ---------------------------------------------------------------

def test_dialogue_lines_and_the_two_spaces_that_keep_a_block():
    # "Dialogue": the DEALER / MONKEY example, its empty line typed as two spaces
    text = ("\nDEALER\nTen.\nFour.\nDealer gets a seven.\n  \nHit or stand sir?\n\n"
            "MONKEY\nDude, I'm a monkey.\n")
    assert kinds(text) == [
        ("character", "DEALER"),
        ("dialogue", "Ten.\nFour.\nDealer gets a seven.\nHit or stand sir?"),
        ("character", "MONKEY"),
        ("dialogue", "Dude, I'm a monkey."),
    ]


def test_parentheticals():
    # "Parenthetical": "STEEL / (starting the engine) / So much for retirement!"
    text = "\nSTEEL\n(starting the engine)\nSo much for retirement!\n(beat)\nAgain.\n"
    elements = parse(text).elements
    assert [(e.kind, e.text) for e in elements] == [
        ("character", "STEEL"), ("parenthetical", "(starting the engine)"),
        ("dialogue", "So much for retirement!"), ("parenthetical", "(beat)"),
        ("dialogue", "Again.")]
    assert all(e.name == "STEEL" for e in elements)


def test_dual_dialogue():
    # "Dual Dialogue": "BRICK / Screw retirement. // STEEL ^ / Screw retirement."
    brick, _, steel, said = parse("\nBRICK\nScrew retirement.\n\nSTEEL ^\nScrew retirement.\n"
                                  ).elements
    assert (brick.dual, steel.dual, steel.name) == (False, True, "STEEL")
    assert said.name == "STEEL"
    (forced, _) = parse("\n@McClane ^\nYes.\n").elements
    assert (forced.name, forced.dual) == ("McClane", True)


def test_lyrics():
    # "Lyrics": "~Willy Wonka! Willy Wonka! The amazing chocolatier! ..."
    text = ("\n~Willy Wonka! Willy Wonka! The amazing chocolatier!\n"
            "~Willy Wonka! Willy Wonka! Everybody give a cheer!\n")
    assert kinds(text) == [("lyrics", "Willy Wonka! Willy Wonka! The amazing chocolatier!\n"
                                      "Willy Wonka! Willy Wonka! Everybody give a cheer!")]
    cue, sung = parse("\nCHARLIE\n~Willy Wonka!\n").elements
    assert (sung.kind, sung.name) == ("lyrics", "CHARLIE")


# -- Transition and Centered Text -------------------------------------------------------------

def test_transitions():
    # "Transition": "Jack begins to argue vociferously in Vietnamese (?), But mercifully
    # we... / CUT TO: / EXT. BRICK'S POOL - DAY"
    text = ("Jack begins to argue vociferously in Vietnamese (?), But mercifully we...\n\n"
            "CUT TO:\n\nEXT. BRICK'S POOL - DAY\n\nSteel dives in.\n")
    assert [k for k, _ in kinds(text)] == ["action", "transition", "scene_heading", "action"]
    # "Add one or more spaces after the colon to cause the line to be interpreted as Action"
    assert kinds("\nCUT TO: \n\n") == [("action", "CUT TO:")]


def test_forced_transition_and_centered_text():
    # "Transition": ">Burn to White."; "Centered Text": ">THE END<", "> THE END <"
    text = ("Brick and Steel regard one another.  A job well done.\n\n>Burn to White.\n\n"
            ">THE END<\n\n> THE END <\n")
    elements = parse(text).elements
    assert [(e.kind, e.text) for e in elements] == [
        ("action", "Brick and Steel regard one another.  A job well done."),
        ("transition", "Burn to White."), ("centered", "THE END"), ("centered", "THE END")]
    assert elements[1].forced


def test_fades_are_transitions_an_extension_of_the_spec():
    text = "FADE IN:\n\nINT. HOUSE - DAY\n\nA door.\n\nFADE OUT.\n"
    assert [k for k, _ in kinds(text)] == ["transition", "scene_heading", "action",
                                          "transition"]


# -- Emphasis ---------------------------------------------------------------------------------

@pytest.mark.parametrize("written, reads", [
    # "Emphasis"
    ("*italics*", "italics"), ("**bold**", "bold"), ("***bold italics***", "bold italics"),
    ("_underline_", "underline"),
    ("From what seems like only INCHES AWAY.  _Steel's face FILLS the *Leupold Mark 4* scope_.",
     "From what seems like only INCHES AWAY.  Steel's face FILLS the Leupold Mark 4 scope."),
    ("Steel enters the code on the keypad: **\\*9765\\***",
     "Steel enters the code on the keypad: *9765*"),
    # "the spaces around the emphasis characters are meaningful"
    ("He dialed *69 and then *23, and then hung up.",
     "He dialed *69 and then *23, and then hung up."),
    ("some_variable_name", "some_variable_name"),
    ("**bold *and italic* bold**", "bold and italic bold"),
])
def test_emphasis_is_taken_off(written, reads):
    assert plain(written) == reads


# -- Title Page -------------------------------------------------------------------------------

def test_title_page():
    # "Title Page": the BRICK & STEEL title page, values inline or indented below
    text = ("Title:\n\t_**BRICK & STEEL**_\n\t_**FULL RETIRED**_\nCredit: Written by\n"
            "Author: Stu Maschwitz\nSource: Story by KTM\nDraft date: 1/20/2012\nContact:\n"
            "\tNext Level Productions\n\t1588 Mission Dr.\n\tSolvang, CA 93463\n\n"
            "EXT. BRICK'S PATIO - DAY\n\nA gorgeous day.\n")
    screenplay = parse(text)
    assert screenplay.title == "BRICK & STEEL FULL RETIRED"
    assert screenplay.title_page == {
        "title": "BRICK & STEEL FULL RETIRED", "credit": "Written by",
        "author": "Stu Maschwitz", "source": "Story by KTM", "draft date": "1/20/2012",
        "contact": "Next Level Productions 1588 Mission Dr. Solvang, CA 93463"}
    heading, action = screenplay.elements
    assert (heading.kind, heading.line, action.line) == ("scene_heading", 13, 15)


@pytest.mark.parametrize("first", ["Note: the lights are off.", "INT. HOUSE - DAY - 3:00 PM",
                                   "FADE IN:", "Mara: she waits."])
def test_a_first_line_with_a_colon_is_not_taken_for_a_title_page(first):
    screenplay = parse(f"{first}\n\nAction.\n")
    assert screenplay.title_page == {}
    assert screenplay.elements[0].line == 1


# -- Notes, Boneyard, Sections and Synopses, Page Breaks --------------------------------------

def test_notes_are_removed_inline_and_whole():
    # "Notes": the TRAILER HOME example
    text = ("INT. TRAILER HOME - DAY\n\nThis is the home of THE BOY BAND, AKA DAN and JACK"
            "[[Or did we think of actual names for these guys?]]. They too are drinking "
            "beer.\n\n[[It was supposed to be Vietnamese, right?]]\n\nJACK\n"
            "(in Vietnamese, subtitled)\n*Did you know Brick and Steel are retired?*\n")
    assert kinds(text) == [
        ("scene_heading", "INT. TRAILER HOME - DAY"),
        ("action", "This is the home of THE BOY BAND, AKA DAN and JACK. They too are "
                   "drinking beer."),
        ("character", "JACK"), ("parenthetical", "(in Vietnamese, subtitled)"),
        ("dialogue", "Did you know Brick and Steel are retired?")]


def test_a_note_spans_lines_joined_by_two_spaces_but_not_an_empty_line():
    # "Notes": "if you wish a note to contain an empty line, you must place two spaces
    # there"; "Error Handling": no element looks past a double line break but the boneyard
    text = ("The phone RINGS.[[This section needs work.\nEither that, or I need coffee.\n"
            "  \nDefinitely coffee.]] He looks around.\n")
    assert kinds(text) == [("action", "The phone RINGS.\n He looks around.")]
    broken = "The phone RINGS.[[This needs work.\n\nDefinitely coffee.]] He looks around.\n"
    assert kinds(broken) == [("action", "The phone RINGS.[[This needs work."),
                             ("action", "Definitely coffee.]] He looks around.")]


def test_a_note_between_a_cue_and_its_dialogue_keeps_the_block():
    assert kinds("\nSTEEL\n[[louder?]]\nHello.\n") == [("character", "STEEL"),
                                                      ("dialogue", "Hello.")]


def test_boneyard_spans_paragraphs_and_keeps_line_numbers():
    # "Boneyard": "/* ... */" around a whole scene, then "CUT TO:"
    text = ("COGNITO\nEveryone's coming after you mate!\n\n/*\nINT. GARAGE - DAY\n\n"
            "BRICK and STEEL get into Mom's PORSCHE.\n\nBRICK\nThis is everybody.\n*/\n\n"
            "CUT TO:\n\nEXT. ROAD - DAY\n\nThey speed off. /* To destiny! */ Fast.\n")
    elements = parse(text).elements
    assert [(e.kind, e.text, e.line) for e in elements] == [
        ("character", "COGNITO", 1), ("dialogue", "Everyone's coming after you mate!", 2),
        ("transition", "CUT TO:", 13), ("scene_heading", "EXT. ROAD - DAY", 15),
        ("action", "They speed off.  Fast.", 17)]


def test_an_unclosed_boneyard_or_note_is_text():
    assert kinds("Act /* one\n\nAct two.\n") == [("action", "Act /* one"), ("action", "Act two.")]
    assert kinds("Act [[ one\n\nAct two.\n") == [("action", "Act [[ one"), ("action", "Act two.")]


def test_sections_synopses_and_page_breaks():
    # "Sections and Synopses": "# ACT I / = Set up the characters and the story."; "Page
    # Breaks": "==="
    text = ("# ACT I\n\n= Set up the characters and the story.\n\nEXT. BRICK'S PATIO - DAY\n\n"
            "## Whatever\n\n===\n\nA gorgeous day.\n")
    elements = parse(text).elements
    assert [(e.kind, e.text, e.level) for e in elements] == [
        ("section", "ACT I", 1), ("synopsis", "Set up the characters and the story.", 0),
        ("scene_heading", "EXT. BRICK'S PATIO - DAY", 0), ("section", "Whatever", 2),
        ("page_break", "", 0), ("action", "A gorgeous day.", 0)]


# -- line ends, lines and hostile text --------------------------------------------------------

def test_any_line_end_and_a_byte_order_mark():
    text = "\ufeffINT. HOUSE - DAY\r\n\r\nA door.\rIt opens.\n"
    assert kinds(text) == [("scene_heading", "INT. HOUSE - DAY"),
                           ("action", "A door.\nIt opens.")]


def test_elements_know_their_lines():
    text = "Title: X\n\nINT. A - DAY\n\nAction one.\nstill one.\n\nMARA\n(softly)\nHi.\n"
    assert [(e.kind, e.line) for e in parse(text).elements] == [
        ("scene_heading", 3), ("action", 5), ("character", 8), ("parenthetical", 9),
        ("dialogue", 10)]


@pytest.mark.parametrize("text", [
    "[[" * 200_000 + "]]", "/*" * 200_000, "[[\n\n" * 100_000 + "]]", "*a" * 200_000,
    "_a " * 200_000, ("ANNA\n" * 100_000), "\n" * 500_000, "/* */" * 100_000,
])
def test_hostile_text_is_parsed_in_linear_time(text):
    started = time.perf_counter()
    parse(text)
    assert time.perf_counter() - started < 5


# -- whatever the screenplay, the storyboard made from it validates ---------------------------

FRAGMENTS = ["", "", "  ", "INT. HOUSE - DAY", "ext. été - night #2#", ".DREAM", "MARA",
             "THEO ^", "@McCLANE (V.O.) (cont'd)", "2ND GUARD (O.S.)", "NARRATOR", "@黒澤",
             "(quietly)", "(beat)", "Hello @ {{ x }} {% y %} {# z #}", "~la la la", "CUT TO:",
             "DISSOLVE TO:", "FADE OUT.", "FADE IN:", ">THE END<", "> Burn to White.", "[[a note",
             "]]", "/*", "*/", "# Act", "= a synopsis", "===", "!FORCED ACTION", "Title: X",
             "Author: Y", "A", "...", "*bold* _under_ \\*", "She waits.\u2028Then\x85more.",
             " ".join(["word."] * 40), "x" * 2600]


@settings(deadline=None, max_examples=400, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS),
                          st.text(st.characters(blacklist_categories=("Cs", "Cc")),
                                  max_size=30)), max_size=40))
def test_whatever_the_screenplay_its_storyboard_validates(tmp_path_factory, lines):
    """The import either says there is nothing to film or makes a storyboard that every
    stage up to compile accepts, without a warning (check_storyboard raises, naming the
    mapping's mistake, otherwise)."""
    from kling_compose.commands.screenplay import check_storyboard, import_text, storyboard_text
    from kling_compose.errors import UserError

    text = "\n".join(lines)
    try:
        imported = import_text(text, "script.fountain", "script")
    except UserError as exc:
        (diagnostic,) = exc.diagnostics
        assert "nothing to film" in diagnostic.message
        event("nothing to film")
        return
    event(f"{min(len(imported.shots), 5)}+ shots, {min(imported.lines, 5)}+ lines")
    storyboard = storyboard_text(imported, "script.fountain")
    folder = tmp_path_factory.mktemp("import")
    assert check_storyboard(storyboard, folder / "storyboard.yaml", "storyboard.yaml",
                            "script.fountain") == []
