"""lfs_agent.redact: credentials in URLs never shown, the rest of the text kept."""

from __future__ import annotations

import pytest

from lfs_agent.redact import MASK, has_userinfo, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@127.0.0.1:8080/x", "http://***@127.0.0.1:8080/x"),
        ("https://token@example.com/repo.git", "https://***@example.com/repo.git"),
        # A password holding '@', ':', '?' or '#': everything up to the last '@'.
        ("https://me:p@ss:w@rd@host/x", "https://***@host/x"),
        ("https://me:a?b#c@host/x", "https://***@host/x"),
        ("https://me:p%40ss@host", "https://***@host"),
        ("HTTPS://Me:Pw@Host/X", "HTTPS://***@Host/X"),
        ("s3+https://key:secret@minio.local/bucket", "s3+https://***@minio.local/bucket"),
        ("https://@host/x", "https://***@host/x"),
        # Nothing to hide: unchanged.
        ("https://example.com/a@b/c", "https://example.com/a@b/c"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("/srv/objects", "/srv/objects"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    ],
)
def test_redact_url_masks_user_info(url: str, shown: str):
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://h/x?access_token=abc123&page=2", "https://h/x?access_token=***&page=2"),
        ("https://h/x?page=2&token=abc", "https://h/x?page=2&token=***"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=f00d",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***",
        ),
        (
            "https://a.blob.core.windows.net/c?sv=2020&sig=Zm9v%3D",
            "https://a.blob.core.windows.net/c?sv=2020&sig=***",
        ),
        ("https://h/x?api_key=k#frag", "https://h/x?api_key=***#frag"),
        ("https://h/x?password=&q=1", "https://h/x?password=***&q=1"),
        ("https://h/x?page=2&sort=name", "https://h/x?page=2&sort=name"),
    ],
)
def test_redact_url_masks_secret_query_values(url: str, shown: str):
    assert redact_url(url) == shown


def test_urls_inside_longer_text_are_all_masked():
    text = (
        "2 object(s) failed to upload (http://u:S3CRET@127.0.0.1:9/x):\n"
        "  cannot reach 'https://bot:S3CRET@example.com/y?token=S3CRET', "
        "then LFS_REMOTE_https://a:S3CRET@b/c; see https://docs.example.com/a@b"
    )
    shown = redact_text(text)
    assert "S3CRET" not in shown
    assert shown == (
        "2 object(s) failed to upload (http://***@127.0.0.1:9/x):\n"
        "  cannot reach 'https://***@example.com/y?token=***', "
        "then LFS_REMOTE_https://***@b/c; see https://docs.example.com/a@b"
    )


def test_text_without_a_url_is_returned_as_is():
    text = "user:password@host is not a URL; neither is token=abc"
    assert redact_text(text) is text


def test_has_userinfo():
    assert has_userinfo("https://u:p@h/x")
    assert has_userinfo("  https://token@h/x ")
    assert not has_userinfo("https://h/x")
    assert not has_userinfo("https://h/a@b")
    assert not has_userinfo("/srv/objects")


def test_the_mask():
    assert MASK in redact_url("https://u:p@h")
