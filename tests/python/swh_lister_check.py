"""A real swh.lister lister (1.3.6, the pattern of every lister since 2021) against this
scheduler's RPC server: its constructor calls get_or_create_lister, each page goes through
record_listed_origins in batches of 1000, and its state through update_lister.

Usage: swh_lister_check.py URL
"""

import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterator, List

from swh.lister.pattern import Lister
from swh.scheduler.model import ListedOrigin

url = sys.argv[1]
EPOCH = datetime(2021, 1, 1, tzinfo=timezone.utc)


class ForgeLister(Lister[Dict[str, Any], List[int]]):
    """Lists a fake forge of 1500 origins a page, from the page after the last one seen."""

    LISTER_NAME = "fake-forge"
    PAGES = 3

    def state_from_dict(self, d):
        return {"last_page": d.get("last_page", -1)}

    def state_to_dict(self, state):
        return dict(state)

    def get_state_from_scheduler(self):
        self.lister_obj = self.scheduler.get_or_create_lister(
            name=self.LISTER_NAME, instance_name=self.instance
        )
        return self.state_from_dict(self.lister_obj.current_state)

    def set_state_in_scheduler(self):
        self.lister_obj.current_state = self.state_to_dict(self.state)
        self.lister_obj = self.scheduler.update_lister(self.lister_obj)

    def get_pages(self) -> Iterator[List[int]]:
        first = self.state["last_page"] + 1
        for p in range(first, first + self.PAGES):
            yield [p * 1500 + i for i in range(1500)]

    def get_origins_from_page(self, page: List[int]) -> Iterator[ListedOrigin]:
        for n in page:
            yield ListedOrigin(
                lister_id=self.lister_obj.id,
                url=f"https://forge.example/repo{n:06d}.git",
                visit_type="git",
                last_update=EPOCH + timedelta(seconds=n),
                extra_loader_arguments={"branch": "main"} if n % 2 else {},
            )

    def commit_page(self, page: List[int]) -> None:
        self.state["last_page"] = page[0] // 1500
        self.updated = True


config = {"scheduler": {"cls": "remote", "url": url}}
first = ForgeLister.from_config(**config, url="https://forge.example", instance="test")
stats = first.run()
assert (stats.pages, stats.origins) == (3, 4500), stats
again = ForgeLister.from_config(**config, url="https://forge.example", instance="test")
assert again.state == {"last_page": 2}, again.state
ForgeLister.PAGES = 1
stats = again.run()
assert (stats.pages, stats.origins) == (1, 1500), stats
s = first.scheduler
page = s.get_listed_origins(lister_id=again.lister_obj.id, limit=10000)
assert len(page.results) == 6000, len(page.results)
assert page.results[1].extra_loader_arguments == {"branch": "main"}, page.results[1]
assert s.get_lister("fake-forge", "test").current_state == {"last_page": 3}
print("OK lister", stats.dict())
