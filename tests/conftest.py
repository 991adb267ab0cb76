import warnings

import pytest
import torch

warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*number of training batches.*")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
