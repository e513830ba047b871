"""Every call to Kaggle goes through here, and so does turning Kaggle's failures into one-line
UserErrors: the server's refusals, a lost network, and an installed client too old for a
call the toolkit makes or for what Kaggle answers. Nothing else in the toolkit imports the
`kaggle` package."""

import contextlib
import importlib.metadata
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from kaggle_digits.base.errors import UserError

CREDENTIALS_HELP = (
    "no Kaggle credentials found: set KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY, "
    "or save ~/.kaggle/kaggle.json (create a token at https://www.kaggle.com/settings/api)"
)


@dataclass(frozen=True)
class RemoteSubmission:
    ref: int
    status: str  # PENDING, COMPLETE or ERROR
    public_score: str | None
    error: str | None
    description: str | None
    team_name: str | None = None


@dataclass(frozen=True)
class LeaderboardRow:
    team_id: int
    team_name: str
    score: float
    date: str  # the team's last submission, yyyy-mm-dd


LEADERBOARD_PAGE = 200  # rows a call
# The oldest client with every call the toolkit makes: kaggle 2.2.5 (the live log stream,
# its word for a failed upload); kagglesdk 0.1.38 reads a duration of whole seconds ("0s"),
# which Kaggle sends and 0.1.30 fails on (docs/kaggle-notebooks.md#which-kaggle-client)
CLIENT_REQUIREMENTS = ("kaggle>=2.2.5", "kagglesdk>=0.1.38")
UPGRADE_COMMAND = "pip install --upgrade " + " ".join(f"'{r}'" for r in CLIENT_REQUIREMENTS)
CLIENT_PACKAGES = ("kaggle", "kagglesdk")


class KaggleUnreachable(UserError):
    """No network, or Kaggle not answering: worth trying again later."""


def authenticated_api():
    """A KaggleApi that has found credentials, or a UserError saying how to provide them."""
    # Importing `kaggle` authenticates at import time and prints a help text when it finds
    # no credentials; keep that text off the user's screen, we say it in one line below.
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        try:
            api.authenticate()
        except SystemExit:
            raise UserError(CREDENTIALS_HELP) from None
    return _warning_once_a_command(api)


_outdated_said = False  # the client's "outdated `kaggle` version" warning, this process


def _warning_once_a_command(api):
    """`api`, printing the client's "outdated version" warning only where no client of this
    process printed it yet: the client says it once per KaggleApi, and a command makes one
    for every question it asks Kaggle."""
    check = getattr(api, "_check_response_version", None)
    if check is None:
        return api
    api.already_printed_version_warning = _outdated_said

    def check_once(response) -> None:
        global _outdated_said
        api.already_printed_version_warning = api.already_printed_version_warning or _outdated_said
        check(response)
        _outdated_said = _outdated_said or bool(api.already_printed_version_warning)

    api._check_response_version = check_once  # what get_response_processor hands the client
    return api


def client_versions() -> str:
    """The Kaggle client installed, as `kaggle 2.2.5, kagglesdk 0.1.38`."""
    found = []
    for package in CLIENT_PACKAGES:
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"no {package}")
    return ", ".join(found)


def _raised_by_the_client(error: BaseException) -> bool:
    """Whether `error` came from the kaggle client itself (a type or call its version lacks,
    an answer it cannot read) rather than from this toolkit's own code."""
    if isinstance(error, ImportError):
        return (error.name or "").split(".")[0] in CLIENT_PACKAGES
    owner = getattr(error, "obj", None) if isinstance(error, AttributeError) else None
    if owner is not None and type(owner).__module__.split(".")[0] in CLIENT_PACKAGES:
        return True  # a field its version lacks, read by us
    trace, module = error.__traceback__, ""
    while trace is not None:
        module, trace = trace.tb_frame.f_globals.get("__name__", ""), trace.tb_next
    return module.split(".")[0] in CLIENT_PACKAGES


def client_gap(error: BaseException) -> str:
    """What an exception of the client's own says, with the command that mends it."""
    lacks = isinstance(error, (ImportError, AttributeError))
    what = "lacks a call this toolkit makes" if lacks else "could not read Kaggle's answer"
    return (
        f"the installed Kaggle client ({client_versions()}) {what} "
        f"({type(error).__name__}: {error}); upgrade it: {UPGRADE_COMMAND}"
    )


@contextlib.contextmanager
def kaggle_errors(slug: str, action: str, not_found: str | None = None) -> Iterator[None]:
    """Turn the kaggle client's exceptions into one-line UserErrors about `action`;
    `not_found` says what a 404 means (default: no such competition)."""
    try:
        yield
    except requests.exceptions.HTTPError as error:
        raise UserError(f"{action} failed: {_explain_http_error(error, slug, not_found)}") from None
    except requests.exceptions.ConnectionError:
        raise KaggleUnreachable(
            f"{action} failed: cannot reach Kaggle; check your network connection"
        ) from None
    except requests.exceptions.Timeout:
        raise KaggleUnreachable(
            f"{action} failed: Kaggle did not answer in time; try again"
        ) from None
    except (ImportError, AttributeError, ValueError, TypeError, KeyError) as error:
        if not _raised_by_the_client(error):
            raise
        raise UserError(f"{action} failed: {client_gap(error)}") from None


def _explain_http_error(
    error: requests.exceptions.HTTPError, slug: str, not_found: str | None = None
) -> str:
    status, message = _status_and_message(error)
    if status == 401:
        return (
            "Kaggle rejected the credentials (401); check KAGGLE_USERNAME/KAGGLE_KEY, "
            "KAGGLE_API_TOKEN or ~/.kaggle/kaggle.json, or create a new token at "
            "https://www.kaggle.com/settings/api"
        )
    if status == 403 and "rules" in message.lower():
        return (
            "you have not accepted this competition's rules (403); accept them at "
            f"https://www.kaggle.com/competitions/{slug}/rules and try again"
        )
    if status == 403 and not_found and "permission" in message.lower():
        # Kaggle's usual answer for a kernel or dataset it does not know, as well as for one
        # of another account's
        return f"{not_found}, or not one these credentials may see (403: {message})"
    if status == 403:
        return f"Kaggle refused access (403): {message}"
    if status == 404 and not_found:
        return f"{not_found} (404)"
    if status == 404:
        return (
            f"competition '{slug}' not found on Kaggle (404); check `slug` in the competition spec"
        )
    if message.startswith("Submission not allowed"):
        return f"daily submission limit reached: {message}"
    return f"Kaggle answered {status}: {message}"


def _status_and_message(error: requests.exceptions.HTTPError) -> tuple[int, str]:
    response = error.response
    status = response.status_code if response is not None else 0
    message = str(error.args[0]) if error.args else ""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        body = response.json()
        status = int(body.get("code", status))
        message = str(body.get("message", message))
    return status, message


def download_competition_zip(slug: str, folder: Path) -> Path:
    """Download the competition's data zip into `folder`; return its path."""
    with kaggle_errors(slug, "download"):
        api = authenticated_api()
        try:
            api.competition_download_files(slug, path=str(folder), force=True, quiet=True)
        except ValueError as error:  # the client's check that every byte arrived
            raise UserError(f"download failed: the zip arrived incomplete ({error})") from None
    zips = sorted(Path(folder).glob("*.zip"))
    if not zips:
        raise UserError(f"download failed: Kaggle sent no zip file for '{slug}'")
    return zips[0]


def submit_file(slug: str, csv_path: Path, message: str) -> int:
    """Upload a submission file; return Kaggle's reference for it."""
    with kaggle_errors(slug, "submission"), contextlib.redirect_stdout(io.StringIO()) as printed:
        api = authenticated_api()
        response = api.competition_submit(str(csv_path), message, slug, quiet=True)
    # kaggle 2.2.5 names its word for a failed upload; older clients raise instead
    if response.message == getattr(api, "COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE", None):
        detail = printed.getvalue().strip().splitlines()
        reason = detail[-1] if detail else "the upload did not complete"
        raise UserError(f"submission failed: uploading {csv_path.name} failed ({reason})")
    return int(response.ref)


def list_submissions(slug: str, action: str = "listing submissions") -> list[RemoteSubmission]:
    """The user's submissions to the competition, newest first; `action`: what a failure
    says was being done."""
    with kaggle_errors(slug, action):
        api = authenticated_api()
        submissions = api.competition_submissions(slug, page_size=100) or []
    return [
        RemoteSubmission(
            ref=int(sub.ref),
            status=sub.status.name if hasattr(sub.status, "name") else str(sub.status),
            public_score=sub.public_score or None,
            error=sub.error_description or None,
            description=sub.description or None,
            team_name=sub.team_name or None,
        )
        for sub in submissions
        if sub is not None
    ]


def public_leaderboard(
    slug: str, enough: Callable[[list[LeaderboardRow]], bool]
) -> tuple[list[LeaderboardRow], bool]:
    """The public leaderboard, best first, page by page through the client's own
    GetLeaderboard call (what `kaggle competitions leaderboard --show` asks), until it ends
    or `enough(rows so far)` says so; and whether it ended (every row read)."""
    rows: list[LeaderboardRow] = []
    with kaggle_errors(slug, "reading the leaderboard"):
        from kagglesdk.competitions.types.competition_api_service import (
            ApiGetLeaderboardRequest,
        )

        api = authenticated_api()
        with api.build_kaggle_client() as kaggle:
            token = ""
            while True:
                request = ApiGetLeaderboardRequest()
                request.competition_name = slug
                request.page_size = LEADERBOARD_PAGE
                if token:
                    request.page_token = token
                response = kaggle.competitions.competition_api_client.get_leaderboard(request)
                rows += [_leaderboard_row(entry) for entry in response.submissions or [] if entry]
                token = response.next_page_token
                if not token or enough(rows):
                    return rows, not token


def _leaderboard_row(entry) -> LeaderboardRow:
    try:
        score = float(entry.score)
    except (TypeError, ValueError):
        score = float("nan")  # a team without a public score yet
    date = entry.submission_date.strftime("%Y-%m-%d") if entry.submission_date else ""
    return LeaderboardRow(int(entry.team_id), entry.team_name or "", score, date)
