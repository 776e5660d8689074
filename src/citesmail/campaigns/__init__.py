"""Campaign files: read (TOML front matter between +++ lines, then a Markdown body) and
validated into a `Campaign` (models.py), with errors that name the file and line."""

from .models import SLUG, Campaign, FrontMatter, slugify
from .reader import key_line, load_campaign, resolve_campaign_path

__all__ = ["SLUG", "Campaign", "FrontMatter", "key_line", "load_campaign",
           "resolve_campaign_path", "slugify"]
