import io
import zipfile

from helpers import assert_user_error, run_cli
from synthetic import SLUG


def download(server, *extra):
    return run_cli(
        "--competition", server.spec_path, "--data-dir", server.data_dir, "download", *extra
    )


def folder_files(server):
    folder = server.data_dir / SLUG
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_unpacks_the_three_files(kaggle_server):
    result = download(kaggle_server)
    assert result.exit_code == 0, result.output
    assert "downloaded" in result.stdout
    assert folder_files(kaggle_server) == ["sample_submission.csv", "test.csv", "train.csv"]
    assert "DownloadDataFiles" in kaggle_server.calls
    # nothing temporary is left beside the data
    assert [p.name for p in kaggle_server.data_dir.iterdir()] == [SLUG]


def test_second_download_is_a_no_op(kaggle_server):
    assert download(kaggle_server).exit_code == 0
    calls = len(kaggle_server.calls)
    result = download(kaggle_server)
    assert result.exit_code == 0
    assert "already" in result.stdout
    assert len(kaggle_server.calls) == calls


def test_force_downloads_again_and_replaces_the_files(kaggle_server):
    assert download(kaggle_server).exit_code == 0
    stale = kaggle_server.data_dir / SLUG / "train.csv"
    stale.write_text("stale")
    result = download(kaggle_server, "--force")
    assert result.exit_code == 0, result.output
    assert "downloaded" in result.stdout
    assert stale.read_text().startswith("label,pixel0")


def test_missing_credentials_say_the_three_ways(kaggle_server, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    result = download(kaggle_server)
    assert_user_error(result, "KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "kaggle.json")
    assert folder_files(kaggle_server) == []


def test_credentials_from_kaggle_json_work(kaggle_server, monkeypatch, isolated_home):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    config = isolated_home / ".kaggle" / "kaggle.json"
    config.write_text(f'{{"username": "{kaggle_server.username}", "key": "{kaggle_server.key}"}}')
    config.chmod(0o600)
    assert download(kaggle_server).exit_code == 0


def test_wrong_credentials_are_a_401_without_leaking_the_key(kaggle_server, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "wrong-key-456")
    result = download(kaggle_server)
    assert_user_error(result, "401", "credentials")
    assert "wrong-key-456" not in result.output
    assert folder_files(kaggle_server) == []


def test_rules_not_accepted_says_where_to_accept(kaggle_server):
    kaggle_server.rules_accepted = False
    result = download(kaggle_server)
    assert_user_error(result, "403", "rules", f"https://www.kaggle.com/competitions/{SLUG}/rules")


def test_unknown_competition_is_a_404(kaggle_server):
    kaggle_server.slug = "no-such-competition"
    result = download(kaggle_server)
    assert_user_error(result, "404", f"'{SLUG}' not found")


def test_unreachable_network(kaggle_server):
    kaggle_server.stop()  # the client still points at its now-closed port
    result = download(kaggle_server)
    assert_user_error(result, "cannot reach Kaggle")
    assert list(kaggle_server.data_dir.iterdir()) == []


def test_corrupt_zip_leaves_nothing_behind(kaggle_server):
    kaggle_server.zip_bytes = kaggle_server.zip_bytes[: len(kaggle_server.zip_bytes) // 2]
    result = download(kaggle_server)
    assert_user_error(result, "corrupt")
    assert list(kaggle_server.data_dir.iterdir()) == []


def test_zip_with_bad_crc_is_refused(kaggle_server):
    data = bytearray(kaggle_server.zip_bytes)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("test.csv")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 10
    data[start] ^= 0xFF  # flip one byte inside test.csv's compressed data
    kaggle_server.zip_bytes = bytes(data)
    result = download(kaggle_server)
    assert_user_error(result, "corrupt")
    assert list(kaggle_server.data_dir.iterdir()) == []


def test_zip_entry_escaping_the_folder_is_refused(kaggle_server, tmp_path):
    from synthetic import competition_zip

    kaggle_server.zip_bytes, _ = competition_zip(200, 50, extra={"../evil.txt": b"gotcha"})
    result = download(kaggle_server)
    assert_user_error(result, "../evil.txt", "escapes")
    assert not (kaggle_server.data_dir / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert list(kaggle_server.data_dir.iterdir()) == []


def test_failed_forced_download_keeps_the_good_data(kaggle_server):
    assert download(kaggle_server).exit_code == 0
    kaggle_server.zip_bytes = b"not a zip at all"
    assert_user_error(download(kaggle_server, "--force"), "corrupt")
    assert folder_files(kaggle_server) == ["sample_submission.csv", "test.csv", "train.csv"]
