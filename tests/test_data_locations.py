"""`attack`/`evaluate --data`: a run's data read from where it lies now, checked to be the data it trained on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from common.errors import InputError
from common.files import atomic_write_json
from evaluation.run_data import DataLocations, data_locations, prepared_folder_of, training_data_dir
from trainers.client_record import CLIENT_MANIFEST, CLIENT_RECORD_DIR
from trainers.dataset_info import inspect_dataset


def recorded(data_dir: Path, moved_to: Path, run_dir: Path) -> dict:
    """What model.pt records of the data a run trained on (the client's offer), with the client's record naming
    `moved_to` (gone now) as the folder it served from."""
    info = inspect_dataset(data_dir)
    (run_dir / CLIENT_RECORD_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / CLIENT_RECORD_DIR / CLIENT_MANIFEST, {"data_dir": str(moved_to)})
    fields = {name: getattr(info, name) for name in ("representation", "channels", "size", "num_classes")}
    return {**fields, "train_rows": info.num_train_rows, "holdout_rows": 0}


def test_a_missing_recorded_folder_names_the_data_flag(masked_synthetic_faces: Path, tmp_path: Path) -> None:
    dataset = recorded(masked_synthetic_faces, tmp_path / "cluster" / "masked", tmp_path / "run")
    with pytest.raises(InputError, match="does not exist here; pass --data"):
        training_data_dir(dataset, tmp_path / "run")


def test_data_folders_stand_in_for_the_recorded_paths_when_they_hold_the_same_data(
    synthetic_faces: Path, masked_synthetic_faces: Path, tmp_path: Path
) -> None:
    masked = shutil.copytree(masked_synthetic_faces, tmp_path / "here" / "masked")
    prepared = shutil.copytree(synthetic_faces, tmp_path / "here" / "prepared")
    dataset = recorded(masked_synthetic_faces, tmp_path / "cluster" / "masked", tmp_path / "run")
    with data_locations(DataLocations.from_folders([str(prepared), str(masked)])):
        assert training_data_dir(dataset, tmp_path / "run") == masked
        assert prepared_folder_of(masked) == prepared
    assert prepared_folder_of(masked) == synthetic_faces  # outside the block: the path the manifest records


def test_a_data_folder_of_other_data_is_refused(
    synthetic_faces: Path, masked_synthetic_faces: Path, tmp_path: Path
) -> None:
    from pipelines.data.prepare import PrepareConfig
    from pipelines.data.synth import prepare_synthetic

    other = tmp_path / "other"
    prepare_synthetic(other, identities=12, images_per_identity=4, options=PrepareConfig(size=32))
    with data_locations(DataLocations(prepared=other)):
        with pytest.raises(InputError, match=f"--data {other} is not the data"):
            training_data_dir(recorded(synthetic_faces, tmp_path / "gone", tmp_path / "run"), tmp_path / "run")
        with pytest.raises(InputError, match=f"--data {other} holds other faces"):
            prepared_folder_of(masked_synthetic_faces)


def test_two_folders_of_one_kind_are_refused(synthetic_faces: Path) -> None:
    with pytest.raises(InputError, match="two prepared folders"):
        DataLocations.from_folders([str(synthetic_faces), str(synthetic_faces)])


def test_public_gives_the_attacker_another_folders_public_faces_only_inside_its_block(
    synthetic_faces: Path, tmp_path: Path
) -> None:
    from evaluation.run_data import attacker_faces_dir, read_attacker_faces, read_images
    from pipelines.data.prepare import PrepareConfig
    from pipelines.data.synth import prepare_synthetic

    other = tmp_path / "many_people"
    prepare_synthetic(other, identities=30, images_per_identity=4, options=PrepareConfig(size=32))
    private = read_images(synthetic_faces, "private")
    own = read_attacker_faces(synthetic_faces, private)
    with data_locations(DataLocations.from_folders([], str(other))):
        assert attacker_faces_dir(synthetic_faces) == other
        given = read_attacker_faces(synthetic_faces, private)
    assert torch.equal(given.images, read_images(other, "public").images)
    assert not torch.equal(given.images[: len(own.images)], own.images[: len(given.images)])
    assert attacker_faces_dir(synthetic_faces) == synthetic_faces  # outside the block: the data set's own


def test_public_faces_of_another_size_or_masked_are_refused_naming_the_flag(
    synthetic_faces: Path, masked_synthetic_faces: Path, tmp_path: Path
) -> None:
    from evaluation.run_data import read_attacker_faces, read_images
    from pipelines.data.prepare import PrepareConfig
    from pipelines.data.synth import prepare_synthetic

    with pytest.raises(InputError, match=f"--public {masked_synthetic_faces} is masked"):
        DataLocations.from_folders([], str(masked_synthetic_faces))
    with pytest.raises(InputError, match=r"--public .* must be a prepared folder"):
        DataLocations.from_folders([], str(tmp_path / "nowhere"))
    larger = tmp_path / "larger"
    prepare_synthetic(larger, identities=12, images_per_identity=4, options=PrepareConfig(size=48))
    refused = pytest.raises(InputError, match=rf"--public {larger} holds faces of shape .*--size 32")
    with data_locations(DataLocations.from_folders([], str(larger))), refused:
        read_attacker_faces(synthetic_faces, read_images(synthetic_faces, "private"))
