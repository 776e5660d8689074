"""After the send: what happened to each campaign (data), said as text, CSV or JSON
(formats), and drawn as SVG charts (charts)."""

from .data import CampaignLine, CampaignReport, HourCount, Link, campaign_lines, campaign_report
from .reasons import Reason

__all__ = ["CampaignLine", "CampaignReport", "HourCount", "Link", "Reason", "campaign_lines",
           "campaign_report"]
