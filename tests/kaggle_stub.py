"""A stand-in for Kaggle's API on loopback, spoken to by the real `kaggle` client.

It implements the few CompetitionApiService methods the toolkit uses, with the same JSON
shapes (camelCase fields, errors as {"code": ..., "message": ...}) and HTTP basic auth, and,
given a StubKernels (stub_kernels.py), the KernelsApiService methods, running the pushed
scripts. Tests change its attributes to make it fail in the ways Kaggle does.
"""

import base64
import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd

SERVICE = "/api/v1/competitions.CompetitionApiService/"
# the services of stub_kernels.py: kernels, and the private datasets they may attach
KERNELS_SERVICES = (
    "/api/v1/kernels.KernelsApiService/",
    "/api/v1/datasets.DatasetApiService/",
    "/api/v1/blobs.BlobApiService/",
)
LOG_STREAM = "/api/v1/kernels/logs/stream/"
RULES_MESSAGE = "You must accept this competition's rules before you'll be able to download files."


@dataclass
class StubSubmission:
    ref: int
    file_name: str
    description: str
    content: bytes
    status: str = "PENDING"
    public_score: str = ""
    error_description: str = ""
    polls: int = 0


@dataclass
class StubKaggle:
    slug: str
    zip_bytes: bytes
    username: str = "tester"
    key: str = "secret-key-123"
    hidden_labels: list[int] | None = None  # scores uploads when set
    submission_columns: tuple[str, str] = ("ImageId", "Label")
    rules_accepted: bool = True
    submissions_left: int = 5
    fail_next_upload: int = 0  # how many PUTs to answer with 500
    polls_before_scored: int = 1
    submissions: list[StubSubmission] = field(default_factory=list)
    team_name: str = "tester's team"
    # the other teams' (name, public score, date of their last submission), in any order;
    # the user's team joins them with its best public score, as on Kaggle
    leaderboard: list[tuple[str, str, str]] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    api_version: str = ""  # X-Kaggle-APIVersion on every answer: the newest client's version
    requests: list[tuple[str, dict]] = field(default_factory=list)  # the kernels' calls
    url: str = ""
    kernels: Any = None  # a StubKernels: the kernels service, scripts run as Kaggle does
    # requests are answered in threads of their own: two uploads at once get a ref each
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, port: int = 0) -> "StubKaggle":
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        if self.kernels is not None:
            self.kernels.url = self.url
            self.kernels.uploads = self.uploads
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def public_board(self) -> list[tuple[str, str, str]]:
        """The leaderboard as Kaggle shows it: every team's best public score, best first."""
        scored = [float(sub.public_score) for sub in self.submissions if sub.public_score]
        own = [(self.team_name, f"{max(scored):.5f}", "2026-12-03")] if scored else []
        return sorted(self.leaderboard + own, key=lambda team: -float(team[1]))

    def score(self, content: bytes) -> tuple[str, str, str]:
        """(status, public score, error) for an uploaded CSV, as Kaggle would judge it."""
        if self.hidden_labels is None:
            return "COMPLETE", "", ""
        try:
            frame = pd.read_csv(io.BytesIO(content))
            assert tuple(frame.columns) == self.submission_columns
            labels = frame[self.submission_columns[1]].to_numpy()
            assert len(labels) == len(self.hidden_labels)
        except Exception:
            return "ERROR", "", "Submission file has an invalid format."
        accuracy = float((labels == self.hidden_labels).mean())
        return "COMPLETE", f"{accuracy:.5f}", ""


def _handler_for(stub: StubKaggle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str, headers=()) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict) -> None:
            newer = [("X-Kaggle-APIVersion", stub.api_version)] if stub.api_version else []
            self._send(status, json.dumps(payload).encode(), "application/json", newer)

        def _error(self, code: int, message: str) -> None:
            self._json(code, {"code": code, "message": message})

        def _authorized(self) -> bool:
            expected = base64.b64encode(f"{stub.username}:{stub.key}".encode()).decode()
            return self.headers.get("Authorization") == f"Basic {expected}"

        def do_GET(self) -> None:
            stub.calls.append(f"GET {self.path}")
            output = "/kernel-output/"
            if self.path == f"/files/{stub.slug}.zip":
                self._send(200, stub.zip_bytes, "application/zip")
            elif self.path.startswith(output) and stub.kernels is not None:
                content = stub.kernels.output_file(self.path.removeprefix(output))
                if content is None:
                    self._error(404, "Not found")
                else:
                    self._send(200, content, "application/octet-stream")
            elif self.path.startswith(LOG_STREAM) and stub.kernels is not None:
                self._log_stream()
            else:
                self._error(404, "Not found")

        def _log_stream(self) -> None:
            """Kaggle's live log: chunks written as they come, the connection closed at the
            end (HTTP/1.0, no length)."""
            path, _, query = self.path.removeprefix(LOG_STREAM).partition("?")
            label = dict(pair.partition("=")[::2] for pair in query.split("&")).get(
                "versionLabel", ""
            )
            answer = stub.kernels.log_events(path, label)
            if answer is None:
                self._error(404, "Not found")
                return
            content_type, chunks = answer
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(chunk)
                self.wfile.flush()

        def do_PUT(self) -> None:
            stub.calls.append(f"PUT {self.path}")
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if stub.fail_next_upload > 0:
                stub.fail_next_upload -= 1
                self._error(500, "Upload failed")
                return
            stub.uploads[self.path.rsplit("/", 1)[-1]] = body
            self._json(200, {})

        def do_POST(self) -> None:
            method = self.path.rsplit("/", 1)[-1]
            stub.calls.append(method)
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if not self._authorized():
                self._error(401, "Unauthenticated")
                return
            if self.path.startswith(KERNELS_SERVICES) and stub.kernels is not None:
                stub.requests.append((method, request))
                self._json(*stub.kernels.answer(method, request))
                return
            if request.get("competitionName") != stub.slug:
                self._error(404, "Competition not found")
                return
            handler = getattr(self, f"_{method}", None)
            if handler is None:
                self._error(404, f"Unknown method {method}")
                return
            handler(request)

        def _DownloadDataFiles(self, request: dict) -> None:
            if not stub.rules_accepted:
                self._error(403, RULES_MESSAGE)
                return
            self._send(302, b"", "text/plain", [("Location", f"{stub.url}/files/{stub.slug}.zip")])

        def _StartSubmissionUpload(self, request: dict) -> None:
            if not stub.rules_accepted:
                self._error(403, "You must accept this competition's rules before you can submit.")
                return
            token = f"token-{len(stub.uploads) + len(stub.calls)}"
            self._json(200, {"token": token, "createUrl": f"{stub.url}/upload/{token}"})

        def _CreateSubmission(self, request: dict) -> None:
            if stub.submissions_left <= 0:
                self._error(400, "Submission not allowed:  Your team has used its daily allowance.")
                return
            token = request.get("blobFileTokens", "")
            if token not in stub.uploads:
                self._error(400, "Unknown upload token")
                return
            with stub.lock:
                stub.submissions_left -= 1
                submission = StubSubmission(
                    ref=1000 + len(stub.submissions),
                    file_name=token,
                    description=request.get("submissionDescription", ""),
                    content=stub.uploads[token],
                )
                stub.submissions.append(submission)
            self._json(200, {"message": "Successfully submitted", "ref": submission.ref})

        def _ListSubmissions(self, request: dict) -> None:
            rows = []
            for submission in reversed(stub.submissions):
                submission.polls += 1
                if submission.status == "PENDING" and submission.polls > stub.polls_before_scored:
                    status, score, error = stub.score(submission.content)
                    submission.status = status
                    submission.public_score = score
                    submission.error_description = error
                rows.append(
                    {
                        "ref": submission.ref,
                        "fileName": "submission.csv",
                        "description": submission.description,
                        "status": submission.status,
                        "publicScore": submission.public_score,
                        "errorDescription": submission.error_description,
                        "teamName": stub.team_name,
                    }
                )
            self._json(200, {"submissions": rows})

        def _GetLeaderboard(self, request: dict) -> None:
            if not stub.rules_accepted:
                self._error(403, "You must accept this competition's rules to see its leaderboard.")
                return
            start = int(request.get("pageToken") or 0)
            size = int(request.get("pageSize") or 20)
            board = stub.public_board()
            page = [
                {
                    "teamId": 100 + rank,
                    "teamName": name,
                    "submissionDate": f"{date}T12:00:00Z",
                    "score": score,
                }
                for rank, (name, score, date) in enumerate(board[start : start + size], start)
            ]
            token = str(start + size) if start + size < len(board) else ""
            self._json(200, {"submissions": page, "nextPageToken": token})

    return Handler


def main() -> None:
    """Serve a competition zip on loopback, for trying the whole workflow without Kaggle:

    python tests/kaggle_stub.py --zip ../shared/datasets/digit-recognizer.zip --port 8000
    then point the client at it (KAGGLE_API_ENVIRONMENT=LOCALHOST for port 80)."""
    import argparse
    import time
    from pathlib import Path

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--slug", default="digit-recognizer")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--labels", type=Path, help="CSV with a Label column to score uploads")
    parser.add_argument(
        "--leaderboard", type=Path, help="CSV of the other teams: team, score, date (yyyy-mm-dd)"
    )
    parser.add_argument(
        "--kernels", type=Path, help="a folder: serve the kernels service too, running pushed "
        "scripts as Kaggle does (needs root; cv --on kaggle)",
    )  # fmt: skip
    parser.add_argument(
        "--kernel-env", action="append", default=[], metavar="NAME=VALUE",
        help="added to each kernel's environment (KAGGLE_DIGITS_KILL_AT=epoch:2, say)",
    )  # fmt: skip
    args = parser.parse_args()
    labels = None if args.labels is None else list(pd.read_csv(args.labels)["Label"])
    stub = StubKaggle(slug=args.slug, zip_bytes=args.zip.read_bytes(), hidden_labels=labels)
    if args.kernels is not None:
        import zipfile

        from stub_kernels import KaggleImage, StubKernels, can_run_kernels

        if can_run_kernels():
            parser.error(can_run_kernels())
        zipfile.ZipFile(args.zip).extractall(args.kernels / "competition")
        image = KaggleImage(args.kernels / "image")
        stub.kernels = StubKernels(args.slug, args.kernels / "competition", args.kernels, image)
        stub.kernels.environment = dict(pair.split("=", 1) for pair in args.kernel_env)
    if args.leaderboard is not None:
        teams = pd.read_csv(args.leaderboard, dtype=str)
        stub.leaderboard = list(teams[["team", "score", "date"]].itertuples(index=False))
    stub.start(args.port)
    print(f"stand-in Kaggle at {stub.url} (user {stub.username}, key {stub.key})", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
