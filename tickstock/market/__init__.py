"""Exchange calendar (XNYS) and the automatic-session schedule, all in UTC epoch seconds."""

from tickstock.market.calendar import MarketCalendar, SessionWindow, exchange_date, xnys_calendar
from tickstock.market.schedule import COMPLETED, Action, Decision, SessionScheduler

__all__ = [
    "COMPLETED",
    "Action",
    "Decision",
    "MarketCalendar",
    "SessionScheduler",
    "SessionWindow",
    "exchange_date",
    "xnys_calendar",
]
