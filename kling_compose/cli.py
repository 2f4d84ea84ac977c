"""The command line: each command parses options, calls one function, prints the result.

Heavy imports (httpx, networkx, rich, the engine) happen inside the commands that need them,
so `validate`, `render` and `schema` start fast. UserError is turned into diagnostics and exit
code 1 in one place (`_user_errors`); click keeps usage errors at exit code 2.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from .errors import UserError


def _user_errors(command):
    """Print a UserError's diagnostics to stderr and exit 1 instead of showing a traceback.
    The command runs with the cyclic garbage collector paused (collector.py)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import warnings

        from .collector import paused

        # Pillow warns on stderr about damaged metadata ("Corrupt EXIF data") of images it
        # still reads; what matters of an image is checked and said in the project's words
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        try:
            with paused():
                return command(*args, **kwargs)
        except UserError as exc:
            from .console import print_diagnostics

            print_diagnostics(exc.diagnostics)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def _epilog(examples: list[str], environment: list[str] = ()) -> str:
    """Examples and the environment variables a command reads, laid out as written ("\\b"
    keeps click from rewrapping a paragraph)."""
    text = "\b\nExamples:\n" + "\n".join(f"  {e}" for e in examples)
    if environment:
        text += "\n\n\b\nEnvironment:\n" + "\n".join(f"  {e}" for e in environment)
    return text


def _key_help() -> str:
    """The key variables every provider declares (providers/base.py Declared)."""
    import textwrap

    from .providers import PROVIDERS

    names = [v for p in PROVIDERS.values() for v in p.key_variables]
    return "\n    ".join(textwrap.wrap(", ".join(names) + ": provider keys", 76))


_KEYS = [_key_help(),
         "  (or <NAME>_FILE naming a file that holds one, or a .env file beside the storyboard)"]
_TABLES = ["NO_COLOR: print without colours (https://no-color.org)"]
_RUN_ENV = [*_KEYS, "KLING_COMPOSE_<HOST>_URL: another base URL for a host (docs/providers.md)",
            "KLING_COMPOSE_POLL_SECONDS, KLING_COMPOSE_POLL_TIMEOUT_SECONDS,",
            "  KLING_COMPOSE_DOWNLOAD_TIMEOUT_SECONDS: polling and download timing", *_TABLES]


PROFILE = "kling_compose.profile"  # where --profile waits in click's context (ctx.meta)


def _remember_profile(ctx, param, value):
    if value is not None:
        ctx.meta[PROFILE] = value
    return value


def current_profile() -> str | None:
    """The --profile of the command being run (None: the storyboard's plain defaults)."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(PROFILE) if ctx is not None else None


def storyboard_options(command):
    """PATH plus the template variable options and --profile, shared by every command that
    reads a storyboard."""
    command = click.option("--profile", metavar="NAME", expose_value=False, is_eager=True,
                           callback=_remember_profile,
                           help="Apply the storyboard's profile NAME (`profiles:`) over its "
                           "defaults; its clips, lock and films are kept apart.")(command)
    command = click.option("--vars", "vars_files", multiple=True, metavar="FILE.yaml",
                           help="Template variables from a YAML mapping (repeatable).")(command)
    command = click.option("--var", "var_items", multiple=True, metavar="NAME=VALUE",
                           help="A template variable, as a string (repeatable).")(command)
    command = click.argument("path", required=False, metavar="[PATH]")(command)

    @functools.wraps(command)
    @_user_errors
    def with_project_defaults(*args, **kwargs):
        return command(*args, **_project_defaults(kwargs))

    return with_project_defaults


PROJECT = "kling_compose.project"  # the project file's defaults, in click's context (ctx.meta)

# commands that show what the last run made: the project's provider and preview resolution
# come after the last run's, not before
_AFTER_LAST_RUN = frozenset({"status", "export", "report"})


def _project_defaults(kwargs: dict) -> dict:
    """The command's arguments with the project file's defaults (kling-compose.yaml beside
    the storyboard) filled in where the command line gave nothing: its vars files go first,
    so --vars and --var override them. `run --plan FILE` takes its variables, provider and
    preview resolution from the saved plan, never from the file."""
    from .project.defaults import project_defaults

    file, display = storyboard_path(kwargs.get("path"))
    defaults = project_defaults(file.parent, os.path.dirname(display))
    click.get_current_context().meta[PROJECT] = defaults
    kwargs = dict(kwargs)
    saved = bool(kwargs.get("saved_plan"))
    if not saved:
        kwargs["vars_files"] = (*defaults.vars, *kwargs.get("vars_files", ()))
    fill = {"concurrency": defaults.concurrency, "max_cost": defaults.max_cost}
    if not saved and click.get_current_context().info_name not in _AFTER_LAST_RUN:
        fill |= {"provider": defaults.provider,
                 "preview_resolution": defaults.preview_resolution}
    for name, value in fill.items():
        if name in kwargs and kwargs[name] is None:
            kwargs[name] = value
    return kwargs


def _as_last_run(path, provider, preview_resolution) -> tuple:
    """--provider and --preview-resolution for a command that shows what the last run made:
    as given, else as the last run ran, else the project file's."""
    from .project.runs import last_run

    file = storyboard_path(path)[0]
    last = last_run(file.parent, current_profile(), file.stem)
    defaults = project_file_defaults()
    return (provider or last.get("provider") or defaults.provider,
            preview_resolution or last.get("preview_resolution")
            or defaults.preview_resolution)


def project_file_defaults():
    """The project file's defaults for the command being run (ProjectDefaults)."""
    from .project.defaults import ProjectDefaults

    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(PROJECT, ProjectDefaults()) if ctx is not None else ProjectDefaults()


def storyboard_path(path: str | None) -> tuple[Path, str]:
    """The storyboard file for PATH (default ./storyboard.yaml; a folder means its storyboard.yaml)
    and the name to show in messages."""
    from .files import is_dir

    if path is None:
        return Path("storyboard.yaml"), "storyboard.yaml"
    if is_dir(path):  # False for a path too long or a loop of links: reading it says why
        display = os.path.join(path, "storyboard.yaml")
        return Path(display), display
    return Path(path), path


def _load(path, var_items, vars_files, variables=None):
    """The resolved storyboard; `variables`: the template variables when already read."""
    from .pipeline import load_resolved, read_variables

    file, display = storyboard_path(path)
    if variables is None:
        variables = read_variables(var_items, vars_files)
    return load_resolved(file, variables, display, current_profile())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kling-compose")
def main() -> None:
    """kling-compose: compile a YAML storyboard into AI video, one command to a finished cut."""


@main.command(epilog=_epilog([
    "kling-compose validate",
    "kling-compose validate films/harbour --var mood=storm",
]))
@storyboard_options
@_user_errors
def validate(path, var_items, vars_files) -> None:
    """Check the storyboard and every API limit; print all errors at once."""
    from .console import print_diagnostics, validation_summary
    from .pipeline import compile_storyboard

    resolved = _load(path, var_items, vars_files)
    jobs = compile_storyboard(resolved)
    # a warning from a shared default is the same for every shot: print it once
    print_diagnostics(dict.fromkeys(w for job in jobs for w in job.warnings))
    click.echo(validation_summary(resolved, jobs))


@main.command(epilog=_epilog([
    "kling-compose render > rendered.yaml",
    "kling-compose render --vars night.yaml",
]))
@storyboard_options
@_user_errors
def render(path, var_items, vars_files) -> None:
    """Print the storyboard after Jinja rendering."""
    from .pipeline import read_variables, render_text

    file, display = storyboard_path(path)
    click.echo(render_text(file, read_variables(var_items, vars_files), display), nl=False)


@main.command(epilog=_epilog([
    "kling-compose config",
    "kling-compose config --json | jq '.scenes[].shots[].duration'",
]))
@storyboard_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@_user_errors
def config(path, var_items, vars_files, as_json) -> None:
    """Print the storyboard as the compiler sees it: templated, defaults inherited into every
    shot, references resolved; first, as comments, what the project file (kling-compose.yaml)
    sets (on stderr with --json)."""
    import json

    import yaml

    from .commands.config import resolved_config

    data = resolved_config(_load(path, var_items, vars_files))
    defaults = project_file_defaults()
    if defaults.file is not None:  # said beside the storyboard, which stays a storyboard
        said = [yaml.safe_dump({key: value}, allow_unicode=True, width=1000,
                               default_flow_style=True)[1:-2]
                for key, value in defaults.settings().items()] or ["(none set)"]
        click.echo("\n".join([f"# defaults from {defaults.file} (the command line overrides "
                              "them):", *(f"#   {line}" for line in said)]),
                   err=as_json)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100),
                   nl=False)


@main.command()
def schema() -> None:
    """Print the storyboard JSON Schema."""
    from .validate import schema_text

    click.echo(schema_text(), nl=False)


class _NewFolder(click.Path):
    """A folder to create a project in: missing, or a folder (a device such as /dev/null, a
    pipe or a regular file is a usage error, not a traceback)."""

    def __init__(self) -> None:
        super().__init__(file_okay=False)

    def convert(self, value, param, ctx):
        from .files import is_dir, kind_of, shown

        value = super().convert(value, param, ctx)
        try:
            mode = os.stat(value).st_mode
        except (OSError, ValueError):
            return value  # missing (created), or unusable: init says why
        if not is_dir(value):
            self.fail(f"'{shown(str(value))}' is {kind_of(mode)}, not a folder", param, ctx)
        return value


@main.command()
@click.argument("directory", type=_NewFolder())
@click.option("--provider", default="preview", show_default=True, metavar="P",
              help="The provider the storyboard names: preview (free, local), runware, fal, "
                   "kie, kling or kling-v3-task; the project validates on it at once.")
@_user_errors
def init(directory, provider) -> None:
    """Create a new project in DIRECTORY that validates at once."""
    from .commands.scaffold import create_project

    context = click.get_current_context()
    option = next(p for p in context.command.params if p.name == "provider")
    provider = _Provider().convert(provider, option, context)
    created = create_project(Path(directory), provider)
    click.echo(f"created {directory}/ with {', '.join(created)}")
    from .providers import PROVIDERS

    if PROVIDERS[provider].spec.capabilities.local:  # free and offline: run it at once
        click.echo(f"next: cd {directory} && kling-compose run")
    else:
        click.echo(f"next: cd {directory} && kling-compose doctor && kling-compose plan")


def _plan(path, var_items, vars_files, provider, preview_resolution=None, variables=None):
    """The plan, after printing the compiler's warnings (once each) to stderr; a lock that
    cannot be read (git's conflict markers, not JSON) is named first, never read as empty."""
    from .console import print_diagnostics
    from .pipeline import build_storyboard_plan
    from .project.lockfile import check_lockfile

    resolved = _load(path, var_items, vars_files, variables)
    plan = build_storyboard_plan(resolved, provider, preview_resolution)
    board = resolved.storyboard
    check_lockfile(board.root, board.profile, board.path.stem, board.name)
    jobs = (t.job for t in plan.tasks.values() if t.job is not None)
    print_diagnostics(dict.fromkeys(w for job in jobs for w in job.warnings))
    return plan


class _Provider(click.ParamType):
    """A provider name; anything else is a usage error (exit 2) with did-you-mean."""

    name = "provider"

    def convert(self, value, param, ctx):
        from .errors import did_you_mean
        from .settings import PROVIDER_NAMES

        if value in PROVIDER_NAMES:
            return value
        hint = did_you_mean(value, PROVIDER_NAMES) or "one of " + ", ".join(PROVIDER_NAMES)
        self.fail(f"unknown provider '{value}'; {hint}", param, ctx)


class _Usd(click.ParamType):
    """An amount of US dollars: a finite number, 0 or more (nan, inf, -1 and 1e999 are usage
    errors, exit 2)."""

    name = "usd"

    def convert(self, value, param, ctx):
        from decimal import Decimal, InvalidOperation

        if isinstance(value, Decimal):
            return value
        text = str(value).strip().removeprefix("$")
        try:
            amount = Decimal(text) if len(text) <= 40 else None
        except (InvalidOperation, ValueError):
            amount = None
        if amount is None or not amount.is_finite() or amount < 0 or amount > 10**9:
            self.fail(f"'{str(value)[:40]}' is not an amount of dollars (a number from 0, "
                      "e.g. 5 or 2.50)", param, ctx)
        return amount


provider_option = click.option(
    "--provider", type=_Provider(), metavar="P", help="Use provider P for every shot (e.g. "
    "preview for a free rehearsal).")


def preview_option(command):
    return click.option(
        "--preview-resolution", type=click.IntRange(min=72, max=2160), default=None,
        metavar="PIXELS", help="Short side of the clips the preview provider renders "
        "[default: 360]; part of their cache keys.")(command)


class _GateCommand(click.Command):
    """A command whose exit code 2 means something else with --detailed-exitcode ("changes",
    as Terraform): a usage error there exits 1, so a CI gate never reads a bad option as
    "shots to make"."""

    def main(self, args=None, *rest, **kwargs):
        argv = list(sys.argv[1:] if args is None else args)
        try:
            return super().main(argv, *rest, **{**kwargs, "standalone_mode": False})
        except click.exceptions.Exit as done:  # --help, or a command's own sys.exit path
            sys.exit(done.exit_code)
        except click.ClickException as exc:
            if isinstance(exc, click.UsageError) and "--detailed-exitcode" in argv:
                exc.exit_code = 1
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if ctx.params.get("detailed_exitcode"):
                exc.exit_code = 1
            raise

    def make_context(self, info_name, args, parent=None, **extra):
        detailed = "--detailed-exitcode" in args
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if detailed:
                exc.exit_code = 1
            raise


@main.command(cls=_GateCommand, epilog=_epilog([
    "kling-compose plan",
    "kling-compose plan --provider fal --json",
    "kling-compose plan --requests --provider runware",
    "kling-compose plan --format markdown --base origin/main > plan.md   # a PR comment",
    "kling-compose plan --detailed-exitcode   # exit 0: nothing to do, 2: something runs",
], _TABLES))
@storyboard_options
@provider_option
@preview_option
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              default=None, help="How to print the plan: a table [default], JSON (as --json) "
              "or markdown for a pull request's comment.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (--format json).")
@click.option("--base", metavar="REF", help="Also compare with the lock git ref REF holds "
              "(e.g. origin/main): which shots the base already paid for, and what this branch "
              "adds.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when the next run has nothing "
              "to do, 2 when it would make something (1 on an error), as Terraform: for CI.")
@click.option("--requests", is_flag=True, help="Print the exact request bodies as JSON.")
@click.option("--diff", is_flag=True, help="Print a unified diff of each changed request body "
              "against the one its last result was made from.")
@click.option("--out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also save the plan to FILE: `run --plan FILE` runs exactly it.")
@click.option("--full", is_flag=True, help="The full table even for a large plan (by default "
              "one of 300 tasks or more prints as a summary and the tasks that will run).")
@_user_errors
def plan(path, var_items, vars_files, provider, preview_resolution, fmt, as_json, base,
         detailed_exitcode, requests, diff, out, full) -> None:
    """Show the tasks, their order, cache status and cost before anything is spent; for a
    changed task, why."""
    import json

    from . import console
    from .commands.why import explain_plan, orphaned, request_diffs
    from .pipeline import plan_statuses, read_variables
    from .project.decide import Review

    fmt, base = _plan_format(fmt, as_json, requests, diff), _plan_base(base, requests, diff)
    variables = read_variables(var_items, vars_files)  # once: compiled and saved alike
    the_plan = _plan(path, var_items, vars_files, provider, preview_resolution, variables)
    reasons: dict[str, str] = {}
    statuses = plan_statuses(the_plan, reasons)
    delta = _base_delta(the_plan, base) if base is not None else None
    profiles = _profile_costs(path, variables, provider, preview_resolution, the_plan, statuses) \
        if the_plan.resolved.storyboard.profiles and not (requests or diff) else None
    if requests:
        click.echo(json.dumps(console.plan_requests(the_plan), indent=2, ensure_ascii=False))
    elif diff:
        click.echo(request_diffs(the_plan, statuses) or "no request changed\n", nl=False)
    # why each task changes and what the lock has beyond the plan: read once, shown and saved
    changes = explain_plan(the_plan, statuses) if (out or not (requests or diff)) else {}
    orphans = orphaned(the_plan) if (out or not (requests or diff)) else []
    if out:
        from .commands.saved import save_plan

        target = _saved_plan_target(out, the_plan, vars_files)
        reviewed = console.plan_json(the_plan, statuses, reasons, changes, orphans)
        try:
            save_plan(target, the_plan, variables, reviewed, statuses)
        except OSError as exc:
            from .errors import Location
            from .files import os_problem, shown

            raise UserError.single(f"cannot write the saved plan: {os_problem(exc)}",
                                   Location(shown(out))) from None
        click.echo(f"saved the plan to {out}: `kling-compose run --plan {out}` runs exactly "
                   "it", err=True)
    if not (requests or diff):
        _show_plan(fmt, the_plan, statuses, reasons, changes, orphans, profiles, delta, full)
    if detailed_exitcode and Review(the_plan, statuses).to_run:
        sys.exit(2)  # something would run: Terraform's "changes present"


def _show_plan(fmt, the_plan, statuses, reasons, changes, orphans, profiles, delta,
               full) -> None:
    """`plan`'s review in its format: the table, JSON or markdown, with --base's delta."""
    from . import console

    if fmt == "json":
        data = console.plan_json(the_plan, statuses, reasons, changes, orphans, profiles)
        if delta is not None:
            data["base"] = delta.as_json()
        click.echo(console.json_lines(data, "tasks"))
    elif fmt == "markdown":
        from .commands.review import plan_markdown

        click.echo(plan_markdown(the_plan, statuses, reasons, changes, orphans, console.route,
                                 profiles, delta), nl=False)
    else:
        console.print_plan(the_plan, statuses, reasons, changes, orphans, full=full)
        if profiles:
            click.echo(console.profiles_line(profiles, the_plan.resolved.storyboard.profile))
        if delta is not None:
            from .commands.review import base_line

            click.echo(base_line(delta))


def _plan_format(fmt: str | None, as_json: bool, requests: bool, diff: bool) -> str:
    """`plan`'s output format: --format, or --json (the two agree or it is a usage error);
    markdown is a review of its own, not combined with --requests or --diff."""
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json and --format {fmt} exclude each other")
    fmt = "json" if as_json else (fmt or "table")
    if fmt == "markdown" and (requests or diff):
        raise click.UsageError("--format markdown prints the review; --requests and --diff "
                               "print the request bodies: ask for one at a time")
    return fmt


def _plan_base(base: str | None, requests: bool, diff: bool) -> str | None:
    """--base compares the plan's shots: not with --requests or --diff (request bodies)."""
    if base is not None and (requests or diff):
        raise click.UsageError("--base compares the shots with a git ref's lock; --requests "
                               "and --diff print request bodies: ask for one at a time")
    return base


def _base_delta(the_plan, ref: str):
    """`plan --base REF`: each generation against the lock git ref REF holds."""
    from .commands.review import base_lock, compare_with_base

    return compare_with_base(the_plan, base_lock(the_plan, ref))


def _profile_costs(path, variables, provider, preview_resolution, the_plan, statuses):
    """The storyboard's whole cost under its plain defaults and under each profile; what the
    next run pays only for the one planned (its statuses are read already: another profile's
    would mean reading its lock and asking each of its result URLs again on every `plan`). A
    profile that does not compile counts its errors."""
    from .console import ProfileCost
    from .errors import UserError
    from .pipeline import build_storyboard_plan, load_resolved
    from .project.decide import Review

    file, display = storyboard_path(path)
    board = the_plan.resolved.storyboard
    costs = []
    for name in (None, *board.profiles):
        try:
            plan = the_plan if name == board.profile else build_storyboard_plan(
                load_resolved(file, variables, display, name), provider, preview_resolution)
        except UserError as exc:
            costs.append(ProfileCost(name, errors=len(exc.diagnostics)))
            continue
        to_pay = Review(plan, statuses).to_pay_usd if plan is the_plan else None
        costs.append(ProfileCost(name, plan.total_cost_usd, to_pay, len(plan.unknown_costs)))
    return costs


def _saved_plan_target(out: str, the_plan, vars_files) -> Path:
    """The file `plan --out OUT` writes (a link followed): refused when OUT is not a regular
    file (a device such as /dev/full, a pipe), is the storyboard, the lock, an input or a
    film, is an existing file that is not a saved plan, or its folder does not exist."""
    from .files import output_target, project_files

    return output_target(out, out, what="the saved plan", may_replace=_is_saved_plan,
                         protected=project_files(the_plan.resolved, vars_files),
                         hint="save the plan under a new name, e.g. plan.json")


def _is_saved_plan(path: Path) -> bool:
    """An existing file `plan --out` may replace: empty, or a plan it saved before."""
    import json

    from .files import MAX_TEXT_BYTES, head

    data = head(path, MAX_TEXT_BYTES + 1)
    if data is None or len(data) > MAX_TEXT_BYTES:
        return False
    if not data.strip():
        return True
    try:
        saved = json.loads(data.decode("utf-8"))
    except ValueError:
        return False
    return isinstance(saved, dict) and saved.get("format") == "kling-compose plan"


@main.command(epilog=_epilog([
    "kling-compose graph > plan.mmd",
    "kling-compose graph --format dot | dot -Tsvg > plan.svg",
]))
@storyboard_options
@provider_option
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True)
@_user_errors
def graph(path, var_items, vars_files, provider, fmt) -> None:
    """Print the task DAG as Mermaid or Graphviz dot."""
    from .console import graph_text

    click.echo(graph_text(_plan(path, var_items, vars_files, provider), fmt), nl=False)


@main.command(epilog=_epilog([
    "kling-compose run                       # free rehearsal (preview)",
    "kling-compose run --provider fal --max-cost 5",
    "kling-compose run --only opening+        # a shot and what chains from it",
    "kling-compose run --force finale",
], _RUN_ENV))
@storyboard_options
@provider_option
@click.option("--max-cost", type=_Usd(), metavar="USD",
              help="Refuse to start when the estimated cost of this run passes USD.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, metavar="N",
              help="Tasks running at once (local rendering is also capped at the CPU count) "
              "[default: the project file's, else 4].")
@click.option("--force", multiple=True, metavar="SHOT",
              help="Generate SHOT again (repeatable); a voice or element task id makes that "
                   "voice or element again.")
@click.option("--only", multiple=True, metavar="SELECTOR",
              help="Run only what SELECTOR names (repeatable): SHOT or +SHOT (with what it "
              "needs), SHOT+ (and what is made from it), a scene id (its shots).")
@preview_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end.")
@click.option("-q", "--quiet", is_flag=True, help="No progress, no table: only failures and "
              "the films made.")
@click.option("-v", "--verbose", is_flag=True, help="A line per task as it finishes (also "
              "when the output is not a terminal: CI logs).")
@click.option("--plan", "saved_plan", type=click.Path(dir_okay=False), metavar="FILE",
              help="Run exactly the plan saved by `plan --out FILE` (its variables, provider "
              "and preview resolution); refused if anything changed since.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before paying (at a terminal, a "
              "paid run shows what it pays and asks first).")
@_user_errors
def run(path, var_items, vars_files, provider, max_cost, concurrency, force, only,
        preview_resolution, as_json, quiet, verbose, saved_plan, yes) -> None:
    """Execute the plan: generate, chain, assemble; pay only for what changed.

    At a terminal, a run that pays a hosted provider first shows what it pays (by provider
    and tier) and asks to continue; --yes, --json, --plan FILE and runs without a terminal
    (CI, scripts) do not ask. --max-cost refuses a run above it either way."""
    from decimal import Decimal

    from . import console
    from .engine.run import RunOptions, run_plan
    from .settings import Settings

    if saved_plan:
        the_plan = _saved_plan(saved_plan, path, var_items, vars_files, provider,
                               preview_resolution)
    else:
        the_plan = _plan(path, var_items, vars_files, provider, preview_resolution)
    from_file = max_cost is not None and click.get_current_context().get_parameter_source(
        "max_cost") is click.core.ParameterSource.DEFAULT
    options = RunOptions(
        concurrency=concurrency or 4, force=frozenset(force), only=frozenset(only),
        max_cost_usd=None if max_cost is None else Decimal(str(max_cost)),
        max_cost_name=f"max_cost in {project_file_defaults().file}" if from_file
        else "--max-cost")
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other")
    settings = Settings.from_environment(project_root=storyboard_path(path)[0].parent)
    if not (yes or as_json or saved_plan) and _at_terminal():
        _ask_before_paying(the_plan, options, settings)
    with console.RunProgress(the_plan, quiet=as_json or quiet,
                             verbose=verbose and not as_json) as progress:
        result = run_plan(the_plan, options, progress, settings)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(console.run_json(result))
    elif quiet:
        console.print_run_brief(result, the_plan)
    else:
        console.print_run_summary(result, the_plan)
    if not result.ok:
        sys.exit(1)


def _at_terminal() -> bool:
    """Someone at a terminal can answer: stdin and stdout are both TTYs."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def _ask_before_paying(the_plan, options, settings) -> None:
    """The gate before spending: when the run would pay a hosted provider, what it pays (by
    provider and tier) and "Continue?"; no (or Ctrl-C, or end of input) exits 1 with nothing
    touched. The run's own checks come first (--force and --only names, keys, --max-cost): a
    run that would be refused never asks."""
    from . import console
    from .commands.review import spending
    from .engine.run import check_request

    statuses = check_request(the_plan, options, settings)
    paid = spending(the_plan, statuses, options.force, options.only, console.route)
    if paid is None:
        return  # free: the preview, or everything cached or restorable
    for line in paid.lines():
        click.echo(line)
    if settings.store_url or the_plan.resolved.storyboard.store or \
            project_file_defaults().store:
        click.echo("  (clips the shared store already has are fetched first, not paid again)")
    cap = "`--max-cost USD` caps a run; " if options.max_cost_usd is None else ""
    click.echo(f"  ({cap}`-y` skips this question)")
    try:
        go = click.confirm("Continue?", default=False)
    except click.Abort:
        go = False
        click.echo("", err=True)
    if not go:
        click.echo("nothing was paid: the run did not start", err=True)
        sys.exit(1)


def _saved_plan(file, path, var_items, vars_files, provider, preview_resolution):
    """The plan `run --plan FILE` runs: computed again from the saved plan's variables and
    options, and refused unless it is the plan that was saved (commands/saved.py)."""
    from .commands.saved import check_saved, read_saved
    from .files import require_readable
    from .pipeline import build_storyboard_plan, load_resolved, plan_statuses, read_variables

    require_readable(file, what="the saved plan", hint="save a plan with `kling-compose plan "
                     "--out plan.json`, review it, then run it")
    saved = read_saved(Path(file))
    then = saved["fingerprint"]
    for option, given, kept in (("--provider", provider, then.get("provider")),
                                ("--preview-resolution", preview_resolution,
                                 then.get("preview_resolution"))):
        if given is not None and given != kept:
            saved_as = f"{option} {kept}" if kept is not None else f"no {option}"
            raise click.UsageError(f"{option} {given} differs from the saved plan ({saved_as}); "
                                   "leave it out, or save a new plan")
    variables = read_variables(var_items, vars_files) if var_items or vars_files \
        else dict(then.get("variables") or {})
    sb_file, display = storyboard_path(path)
    if current_profile() is not None and current_profile() != then.get("profile"):
        saved_as = f"--profile {then['profile']}" if then.get("profile") else "no --profile"
        raise click.UsageError(f"--profile {current_profile()} differs from the saved plan "
                               f"({saved_as}); leave it out, or save a new plan")
    the_plan = build_storyboard_plan(
        load_resolved(sb_file, variables, display, then.get("profile")),
        then.get("provider"), then.get("preview_resolution"))
    check_saved(Path(file), saved, the_plan, variables, plan_statuses(the_plan))
    return the_plan


@main.command(epilog=_epilog(["kling-compose status", "kling-compose status --json"], _TABLES))
@storyboard_options
@provider_option
@preview_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@_user_errors
def status(path, var_items, vars_files, provider, preview_resolution, as_json) -> None:
    """What is done, failed and pending, and what it cost.

    Without --provider and --preview-resolution, the project is shown as the last run left
    it (with that run's provider and preview size)."""
    from . import console
    from .commands.status import project_status

    report = project_status(_plan(path, var_items, vars_files,
                                  *_as_last_run(path, provider, preview_resolution)))
    if as_json:
        click.echo(console.status_json(report))
    else:
        console.print_status(report)


@main.command()
@storyboard_options
@provider_option
@_user_errors
def doctor(path, var_items, vars_files, provider) -> None:
    """Check Python, ffmpeg, the project and each provider's key before spending anything."""
    from .commands.doctor import diagnose

    file, display = storyboard_path(path)
    problems = 0
    for check in diagnose(file, display, lambda: _plan(path, var_items, vars_files, provider),
                          provider):
        click.echo(str(check))  # plain text: a path with [brackets] is not markup
        problems += not check.ok
    click.echo(f"{problems} problem(s): fix them before kling-compose run" if problems
               else "no problems found")
    if problems:
        sys.exit(1)


@main.command(epilog=_epilog(["kling-compose pick lantern-rises 2",
                              "kling-compose pick sky 1 films/harbour.yaml"]))
@click.argument("shot")
@click.argument("take", type=click.IntRange(min=1), metavar="K")
@storyboard_options
@_user_errors
def pick(shot, take, path, var_items, vars_files) -> None:
    """Use take K of SHOT: sets `pick: K` in the storyboard for you (comments, order and
    formatting kept). Only what chains from the shot and the films are made again."""
    from .commands.pick import set_pick
    from .pipeline import read_variables

    file, display = storyboard_path(path)
    picked = set_pick(file, display, read_variables(var_items, vars_files), shot, take,
                      current_profile())
    if not picked.changed:
        click.echo(f"shot '{shot}' already uses take {take}; nothing changed")
        return
    click.echo(f"{picked.where}: pick of '{shot}': {picked.before} -> {picked.after}")
    flag = f" --profile {current_profile()}" if current_profile() else ""
    click.echo(f"next: `kling-compose plan{flag}` shows what runs again (nothing is paid for "
               f"'{shot}' itself), `kling-compose run{flag}` makes it")


@main.command(epilog=_epilog(["kling-compose adopt opening 3f2a9c1e-...",
                              "kling-compose adopt harbour 8d41b2 --provider kie"], _RUN_ENV))
@click.argument("shot")
@click.argument("task_id", metavar="TASK_ID")
@storyboard_options
@provider_option
@_user_errors
def adopt(shot, task_id, path, var_items, vars_files, provider) -> None:
    """Take the provider's task TASK_ID (from its dashboard) as SHOT's generation: polled,
    downloaded and verified now, collected by the next `run` without paying again. For a
    submission whose answer was lost; nothing is ever submitted here."""
    from .commands.adopt import adopt as adopt_task
    from .settings import Settings

    the_plan = _plan(path, var_items, vars_files, provider)
    adopted = adopt_task(the_plan, shot, task_id, Settings.from_environment(
        project_root=storyboard_path(path)[0].parent))
    if adopted.replaced:
        click.echo(f"note: the ledger was waiting for task {adopted.replaced}; it now follows "
                   f"{adopted.task_id}", err=True)
    if adopted.state == "done":
        click.echo(f"adopted task {adopted.task_id} as shot '{shot}': {adopted.takes} take(s) "
                   "downloaded and verified")
    else:
        click.echo(f"adopted task {adopted.task_id} as shot '{shot}': still processing")
    flag = f" --profile {current_profile()}" if current_profile() else ""
    click.echo(f"next: `kling-compose run{flag}` collects it (nothing is submitted for it "
               "again)")


@main.command(epilog=_epilog([
    "kling-compose gc --dry-run",
    "kling-compose gc",
    "git fetch --all && kling-compose gc --store --dry-run",
    "kling-compose gc --store --older-than 90d",
]))
@storyboard_options
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--store", "shared", is_flag=True, help="Clean the shared artifact store "
              "(`store:` or KLING_COMPOSE_STORE) instead: remove what no lock names, in this "
              "folder or on a git ref (docs/studio.md).")
@click.option("--ref", "refs", multiple=True, metavar="REF", help="With --store: a git ref "
              "whose locks keep their clips (repeatable; default: every branch, "
              "remote-tracking branch and tag).")
@click.option("--older-than", metavar="AGE", help="With --store: remove only what is older "
              "than AGE (30d, 12h, 0; default 30d).")
@_user_errors
def gc(path, var_items, vars_files, dry_run, shared, refs, older_than) -> None:
    """Remove stored clips and frames nothing needs: neither a lock (storyboard.lock or a
    profile's: never a paid clip it names) nor the storyboard's plan under any profile.

    With --store, the shared store's clips no lock names (here or on any git ref) and older
    than --older-than; a generation's claim and result records go with its clips."""
    if shared:
        from .commands.gc import DEFAULT_AGE, parse_age, store_gc

        try:
            age = parse_age(DEFAULT_AGE if older_than is None else older_than)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--older-than'") from None
        board = _load(path, var_items, vars_files).storyboard
        store_gc(board, refs, age, dry_run, click.echo)
        return
    if refs or older_than is not None:
        raise click.UsageError("--ref and --older-than go with --store")
    from .commands.gc import collect, find_garbage
    from .engine.run import project_lock
    from .pipeline import build_storyboard_plan, load_resolved, read_variables
    from .project.lockfile import check_lockfile, lock_profiles
    from .project.runs import last_run

    file, display = storyboard_path(path)
    root = file.parent
    variables = read_variables(var_items, vars_files)
    board = _load(path, var_items, vars_files, variables).storyboard
    for profile in lock_profiles(root, file.stem):  # a damaged lock: its clips look unneeded
        check_lockfile(root, profile, file.stem, board.name)
    # every profile's plan, as it would run with no flags (the project file's defaults and
    # none) and as its last run ran it: a clip one profile paid for is never garbage because
    # gc was run with another (or none)
    defaults = project_file_defaults()
    plans = []
    for profile in dict.fromkeys((None, *board.profiles, board.profile)):
        resolved = load_resolved(file, variables, display, profile)
        last = last_run(root, profile, file.stem)
        plans += [build_storyboard_plan(resolved),
                  build_storyboard_plan(resolved, last.get("provider"),
                                        last.get("preview_resolution"))]
        if defaults.provider or defaults.preview_resolution:
            plans.append(build_storyboard_plan(resolved, defaults.provider,
                                               defaults.preview_resolution))
    with project_lock(root):  # never while a run writes
        garbage = find_garbage(plans)
        shown = board.paths.shown  # the project's own paths, however PATH was written
        lines = [f"{'would remove' if dry_run else 'removed'} {shown(file)} "
                 f"({file.stat().st_size} bytes)" for file in garbage.files]
        if not dry_run:
            collect(garbage)  # first: never "removed" for what could not be removed
        for line in lines:
            click.echo(line)
    verb = "would free" if dry_run else "freed"
    click.echo(f"{len(garbage.files)} object(s), {verb} {garbage.bytes / 1e6:.1f} MB; "
               f"{garbage.kept} kept")


def _shared_store(path, var_items, vars_files):
    """The project's root, its store and the profiles whose locks `push`/`pull` move: the
    --profile given, else every lock in the project (storyboard.lock and each profile's)."""
    from .project.lockfile import check_lockfile, lock_profiles
    from .settings import Settings
    from .share.artifacts import project_store

    storyboard = _load(path, var_items, vars_files).storyboard
    stem = storyboard.path.stem
    for profile in lock_profiles(storyboard.root, stem):  # a conflicted lock would move nothing
        check_lockfile(storyboard.root, profile, stem, storyboard.name)
    settings = Settings.from_environment(project_root=storyboard.root)
    remote = project_store(storyboard, settings)
    if remote is None:
        from .errors import UserError

        raise UserError.single("this project names no artifact store",
                               hint="add `store: s3://bucket/prefix` (or a folder) to the "
                                    "storyboard or to kling-compose.yaml, or set "
                                    "KLING_COMPOSE_STORE")
    profiles = [storyboard.profile] if current_profile() is not None else \
        (lock_profiles(storyboard.root, stem) or [None])
    return storyboard.root, remote, profiles, stem


@main.command(epilog=_epilog([
    "kling-compose export                    # renders/<film>.otio beside each film",
    "kling-compose export --format edl --output trailer",
    "kling-compose export --output renders/trailer.mp4 -o ~/edit/trailer.otio",
]))
@storyboard_options
@provider_option
@preview_option
@click.option("--format", "fmt", type=click.Choice(["otio", "edl"]), default="otio",
              show_default=True, help="OpenTimelineIO, or a CMX 3600 EDL (video track only).")
@click.option("--output", "output_name", metavar="NAME", help="Only the film NAME (its path "
              "in outputs:, its file name or its stem).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write to FILE (one film only) instead of beside the film.")
@click.option("--edl-style", type=click.Choice(["avid", "premiere", "nucoda"]), default="avid",
              show_default=True, help="How an EDL names each clip's file (the OTIO adapter's "
              "styles; premiere: reel AX and the file name, no FROM CLIP comments).")
@_user_errors
def export(path, var_items, vars_files, provider, preview_resolution, fmt, output_name, out,
           edl_style) -> None:
    """Write the assembled film's timeline for an editor (DaVinci Resolve, Premiere, Avid):
    one clip per shot, crossfades as dissolves, each shot's prompt, provider and cost.

    Without --provider and --preview-resolution, the film the last run made."""
    from .commands.export import export_films

    the_plan = _plan(path, var_items, vars_files,
                     *_as_last_run(path, provider, preview_resolution))
    for written in export_films(the_plan, fmt, output=output_name,
                                out=Path(out) if out else None, edl_style=edl_style):
        click.echo(str(written))


@main.command(epilog=_epilog(["kling-compose push"]))
@storyboard_options
@_user_errors
def push(path, var_items, vars_files) -> None:
    """Send every clip storyboard.lock (and each profile's lock, or only --profile's) names
    to the shared artifact store (what it lacks)."""
    from .paths import ProjectPaths
    from .project.store import Store
    from .share.artifacts import STORE_FAILURES, lock_objects, store_failure
    from .share.artifacts import push as push_objects

    root, remote, profiles, stem = _shared_store(path, var_items, vars_files)
    store = Store(ProjectPaths(root).state)
    try:
        moved = push_objects(remote, store, lock_objects(root, store, profiles, stem))
    except STORE_FAILURES as exc:  # a bug is not "the store failed": it keeps its traceback
        raise store_failure(remote, exc) from None
    click.echo(f"pushed {len(moved.done)} object(s) to {remote.url}; "
               f"{moved.present} already there")


@main.command(epilog=_epilog(["git clone ... && cd harbour && kling-compose pull"]))
@storyboard_options
@_user_errors
def pull(path, var_items, vars_files) -> None:
    """Fetch every clip storyboard.lock (and each profile's lock, or only --profile's) names
    from the shared artifact store, verified, and write the films and shot clips to renders/
    (no key needed)."""
    from .engine.run import project_lock
    from .paths import ProjectPaths
    from .project.store import Store
    from .share.artifacts import STORE_FAILURES, export_lock, lock_objects, store_failure
    from .share.artifacts import pull as pull_objects

    root, remote, profiles, stem = _shared_store(path, var_items, vars_files)
    store = Store(ProjectPaths(root).state)
    with project_lock(root):
        try:
            moved = pull_objects(remote, store, lock_objects(root, store, profiles, stem))
        except STORE_FAILURES as exc:  # a bug keeps its traceback
            raise store_failure(remote, exc) from None
        written = [file for profile in profiles
                   for file in export_lock(root, store, profile, stem,
                                           _wanted(path, var_items, vars_files, profile))]
    for name in moved.refused:
        click.echo(f"warning: {name} in {remote.url} does not hash to its name: not used",
                   err=True)
    click.echo(f"pulled {len(moved.done)} object(s) from {remote.url}; {moved.present} "
               f"already here; wrote {len(written)} file(s) under renders/")
    if moved.refused:
        sys.exit(1)


def _wanted(path, var_items, vars_files, profile) -> dict[str, str]:
    """Each shot's and film's cache key as the storyboard (under `profile`) now asks for it,
    with the project's provider: which of a shot's paid results `pull` writes to renders/."""
    from .errors import UserError
    from .pipeline import build_storyboard_plan, load_resolved, read_variables

    file, display = storyboard_path(path)
    try:
        plan = build_storyboard_plan(
            load_resolved(file, read_variables(var_items, vars_files), display, profile),
            project_file_defaults().provider)
    except UserError:  # a profile that does not compile: its newest results
        return {}
    wanted = {}
    for task in plan.tasks.values():
        if task.kind == "generate" and task.shot is not None:
            wanted[task.shot] = task.cache_key
        elif task.kind == "assemble":
            wanted[task.assemble_params.path] = task.cache_key
    return wanted


@main.command(epilog=_epilog([
    "kling-compose report                     # then open renders/report.html",
    "kling-compose report films/harbour --provider fal",
    "kling-compose report --serve             # http://127.0.0.1:8765/, live",
]))
@storyboard_options
@provider_option
@preview_option
@click.option("--serve", is_flag=True, help="Then serve renders/ on 127.0.0.1 until Ctrl-C: "
              "the open page reloads when the report is written again (by `report` or "
              "`watch`).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=None, metavar="P",
              help="With --serve: the port [default: 8765; 0: any free one].")
@_user_errors
def report(path, var_items, vars_files, provider, preview_resolution, serve, port) -> None:
    """Write renders/report.html: an offline page to review every film, shot and take.

    Without --provider and --preview-resolution, the project is shown as the last run left
    it (with that run's provider and preview size). With --serve, the page is then served
    on 127.0.0.1 only, with live reload (the file on disk stays an offline page)."""
    from .commands.report import write_report

    if port is not None and not serve:
        raise click.UsageError("--port goes with --serve")
    the_plan = _plan(path, var_items, vars_files, *_as_last_run(path, provider,
                                                                preview_resolution))
    server = None
    if serve:  # bound first: a port in use is refused before anything is written
        from .commands.serve import DEFAULT_PORT, ReportServer

        paths = the_plan.resolved.storyboard.paths
        server = ReportServer(paths.renders, paths.report_page,
                              DEFAULT_PORT if port is None else port)
    try:
        page = write_report(the_plan)
        click.echo(f"report: {page}")
    except BaseException:
        if server is not None:
            server.server_close()
        raise
    if server is not None:
        from .commands.serve import serve_until_interrupted

        serve_until_interrupted(server, click.echo)


@main.group()
def lock() -> None:
    """The lock file in git: set up conflict-free merges, resolve a conflicted merge."""


@lock.command(epilog=_epilog(["kling-compose lock setup && git add .gitattributes"]))
@storyboard_options
@_user_errors
def setup(path, var_items, vars_files) -> None:
    """Write the .gitattributes lines that have git merge lock files without conflicts
    (`merge=union`: both sides' results kept). `init` writes them for a new project."""
    from .project.lockfile import setup_gitattributes

    file = storyboard_path(path)[0]
    root = file.parent
    if setup_gitattributes(root, file.stem):
        click.echo(f"wrote {root / '.gitattributes'}: commit it; from now on git merges the "
                   "lock files line by line")
    else:
        click.echo(".gitattributes already merges the lock files")


@lock.command(epilog=_epilog(["git merge feature  # CONFLICT (content): storyboard.lock",
                              "kling-compose lock resolve && git add storyboard.lock"]))
@storyboard_options
@_user_errors
def resolve(path, var_items, vars_files) -> None:
    """Rewrite a lock a git merge left with conflict markers as the union of both sides:
    every result either branch paid for is kept, and the storyboard picks the one it uses."""
    from .project.lockfile import lock_path, resolve_conflict

    root = storyboard_path(path)[0].parent
    stem = storyboard_path(path)[0].stem
    kept = resolve_conflict(root, current_profile(), stem)
    name = lock_path(root, current_profile(), stem).name
    if kept:
        click.echo(f"{name}: both sides kept ({kept} result(s)); next: `git add {name}`")
    else:
        click.echo(f"{name} has no conflict to resolve")


@lock.command(epilog=_epilog(["kling-compose lock rename && git add storyboard.lock"]))
@storyboard_options
@_user_errors
def rename(path, var_items, vars_files) -> None:
    """Record the storyboard's new `name:` in its lock files (every profile's, or only
    --profile's), keeping every result: after renaming a storyboard, whose lock a command
    then refuses as another storyboard's."""
    from .pipeline import load_resolved, read_variables
    from .project.lockfile import lock_path, lock_profiles, rename_lock

    file, display = storyboard_path(path)
    board = load_resolved(file, read_variables(var_items, vars_files), display,
                          current_profile()).storyboard
    profiles = [board.profile] if current_profile() is not None else \
        lock_profiles(board.root, file.stem)
    renamed = 0
    for profile in profiles:
        before = rename_lock(board.root, profile, file.stem, board.name)
        if before is not None:
            renamed += 1
            click.echo(f"{lock_path(board.root, profile, file.stem).name}: '{before}' -> "
                       f"'{board.name}'")
    if not renamed:
        click.echo(f"the locks already name '{board.name}'")


@main.command("import", epilog=_epilog([
    "kling-compose import harbour.fountain          # storyboard.yaml beside it",
    "kling-compose import harbour.fountain -o films/harbour/",
    "kling-compose import harbour.fountain -o - | less",
    "kling-compose import harbour.fountain --force && kling-compose run",
]) + "\n\n\b\nFountain is the plain-text screenplay format: https://fountain.io/syntax\n"
    "The mapping is in docs/format.md, \"Importing a screenplay\".")
@click.argument("screenplay", metavar="SCREENPLAY.fountain")
@click.option("-o", "--output", metavar="FILE",
              help="Where to write the storyboard [default: storyboard.yaml beside the "
                   "screenplay]; a folder means its storyboard.yaml; `-` prints it.")
@click.option("--force", is_flag=True,
              help="Replace the file if it exists (never the screenplay itself).")
@_user_errors
def import_(screenplay: str, output: str | None, force: bool) -> None:
    """Make a storyboard from a Fountain screenplay: a scene per scene heading, a shot per
    action paragraph, an element per character, the dialogue on its shots. It validates and
    renders on the free preview at once."""
    from .commands.screenplay import import_screenplay

    written = import_screenplay(screenplay, output, force)
    for warning in written.warnings:
        click.echo(str(warning), err=True)
    imported = written.imported
    summary = (f"{len(imported.scenes)} scene(s), {len(imported.shots)} shot(s), "
               f"{len(imported.characters)} element(s), {imported.lines} line(s) of dialogue")
    if written.target is None:
        click.echo(written.text, nl=False)
        click.echo(f"storyboard from {screenplay}: {summary}", err=True)
        return
    click.echo(f"wrote {written.target}: {summary}, from {screenplay}")
    if written.git_files:
        click.echo(f"wrote {' and '.join(written.git_files)} beside it, as `init` does: git "
                   "keeps the renders and the local state out and merges the lock files")
    from shlex import quote

    from .project.defaults import project_defaults
    from .providers import LOCAL_PROVIDERS

    try:  # the project file's provider is what a plain `run` uses, over the storyboard's
        paid = project_defaults(Path(written.target).parent).provider
    except UserError:
        paid = None  # said by the command that reads it
    if not paid or paid in LOCAL_PROVIDERS:
        click.echo(f"next: kling-compose run {quote(written.target)}   # a free preview")
        return
    click.echo(f"next: kling-compose run --provider preview {quote(written.target)}   "
               f"# a free preview (kling-compose.yaml names {paid}: a plain `run` would use "
               "it, and pay)")


# `kling-compose watch` reads the project file on each round, not once at the start: its
# options are its own, not storyboard_options (a broken kling-compose.yaml is waited for)
@main.command(epilog=_epilog([
    "kling-compose watch                     # check on every save, rehearse what changed",
    "kling-compose watch films/harbour --serve --port 8800",
    "kling-compose watch --profile draft --preview-resolution 240",
]))
@click.argument("path", required=False, metavar="[PATH]")
@click.option("--var", "var_items", multiple=True, metavar="NAME=VALUE",
              help="A template variable, as a string (repeatable).")
@click.option("--vars", "vars_files", multiple=True, metavar="FILE.yaml",
              help="Template variables from a YAML mapping (repeatable); watched too.")
@click.option("--profile", metavar="NAME", expose_value=False, is_eager=True,
              callback=_remember_profile,
              help="Apply the storyboard's profile NAME (`profiles:`) over its defaults.")
@preview_option
@click.option("--serve", is_flag=True, help="Also serve the report on 127.0.0.1 (as `report "
              "--serve`): the open page reloads after each render.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=None, metavar="P",
              help="With --serve: the port [default: 8765; 0: any free one].")
@_user_errors
def watch(path, var_items, vars_files, preview_resolution, serve, port) -> None:
    """Check the storyboard on every save (its templates, vars files and the project file
    too), print what changed in its errors and warnings, and while it is valid rehearse on
    the free preview provider only the shots that changed and what chains from them, then
    the films and the report. Never calls a paid provider, whatever the storyboard names.
    Ctrl-C stops it."""
    from .commands.watch import FREE_PROVIDER, Request, Watch

    if port is not None and not serve:
        raise click.UsageError("--port goes with --serve")
    file, display = storyboard_path(path)
    request = Request(file, display, tuple(var_items), tuple(vars_files), current_profile(),
                      preview_resolution)
    server = _report_server(file, current_profile(), port) if serve else None
    try:
        watcher = Watch(request, click.echo, lambda line: click.echo(line, err=True), server)
        if server is not None:
            click.echo(f"serving {server.page_url} (the page reloads after each render)")
        px = f" at {preview_resolution} px" if preview_resolution else ""
        click.echo(f"watching {display}: every shot on the free {FREE_PROVIDER} provider{px}, "
                   "whatever it names; Ctrl-C stops")
        code = watcher.run()
    finally:
        if server is not None:
            server.stop()
    sys.exit(code)


def _report_server(file, profile, port):
    """The report's server, bound before anything else: a port in use is refused at once."""
    from .commands.serve import DEFAULT_PORT, ReportServer
    from .paths import ProjectPaths

    paths = ProjectPaths(file.parent, profile, file.stem)
    return ReportServer(paths.renders, paths.report_page,
                        DEFAULT_PORT if port is None else port).start()


# `kling-compose simulate`: the one click command `python -m kling_compose.simulator` runs too,
# so both list the same options (it imports the server only when it runs)
from .simulator.__main__ import command as _simulate  # noqa: E402

main.add_command(_simulate, "simulate")
# `kling-compose lsp` (kling_compose/lsp/: pygls is imported only when it runs)
from .lsp.command import command as _lsp  # noqa: E402

main.add_command(_lsp)
