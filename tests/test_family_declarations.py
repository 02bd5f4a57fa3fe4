"""The family declarations (mmdiag/families/*.py) are the one home of what a family is: the registry, ``mmdiag tiny``,
the support table and the contract matrix are derived from them, and a declaration that cannot be tested is refused."""

from __future__ import annotations

import inspect

import pytest

from mmdiag.families import Family, TinyBuild, collect, declared, tiny_builds
from mmdiag.lazy_registry import RegistryError, import_object


def test_every_declared_family_has_a_tiny_builder_that_imports_and_takes_the_declared_options():
    for family in declared().values():
        assert family.tiny, f"{family.name} declares no tiny checkpoint"
        for tiny in family.tiny:
            builder = import_object(tiny.builder)
            parameters = inspect.signature(builder).parameters
            assert list(parameters)[:2] == ["out", "spec"], tiny.builder
            assert set(tiny.options) <= set(parameters), f"{tiny.name}: {tiny.builder} takes no {set(tiny.options)}"


def test_every_declared_adapter_imports_and_serves_the_declared_kind():
    for family in declared().values():
        cls = import_object(family.adapter)
        assert cls.kind == family.kind, family.name


def test_the_registry_and_mmdiag_tiny_come_from_the_declarations():
    from mmdiag.adapters.registry import BUILTIN_ADAPTERS
    from mmdiag.checkpoints import TINY_FAMILIES

    assert {a: f.adapter for f in declared().values() for a in f.architectures} == BUILTIN_ADAPTERS
    assert tuple(tiny_builds()) == TINY_FAMILIES


def _family(name: str, architectures: tuple[str, ...], tiny: tuple[TinyBuild, ...]) -> Family:
    return Family(name=name, title=name, architectures=architectures, adapter="x:Y", tiny=tiny)


def test_a_family_without_a_tiny_checkpoint_is_refused():
    with pytest.raises(RegistryError, match="declares no tiny checkpoint"):
        collect([(_family("new", ("NewForConditionalGeneration",), ()), "a test")])


def test_an_architecture_declared_twice_is_refused_naming_both():
    one = _family("one", ("LlavaForConditionalGeneration",), (TinyBuild("one", "m:f"),))
    two = _family("two", ("LlavaForConditionalGeneration",), (TinyBuild("two", "m:f"),))
    with pytest.raises(RegistryError, match="'LlavaForConditionalGeneration' is declared twice: by a and by b"):
        collect([(one, "a"), (two, "b")])


def test_unknown_layouts_and_masks_are_refused():
    with pytest.raises(RegistryError, match="tokens='tiles'"):
        Family(name="x", title="x", architectures=("X",), adapter="x:Y", tiny=(), tokens="tiles")
    with pytest.raises(RegistryError, match="attention='sparse'"):
        Family(name="x", title="x", architectures=("X",), adapter="x:Y", tiny=(), attention="sparse")


def test_module_paths_come_from_the_declaration_and_a_wrong_one_is_named(adapters, monkeypatch):
    """A tower / connector / LM family's parts are found at its declared paths (Qwen2-VL's merger inside its tower);
    a checkpoint whose tree differs from the declaration is a one-line error naming the missing path."""
    import mmdiag.families
    from mmdiag.errors import ConfigError

    qwen = adapters["qwen2_vl"]
    assert qwen.projector_module() is qwen.model.model.visual.merger
    llava = adapters["llava"]
    assert llava.projector_module() is llava.model.model.multi_modal_projector
    monkeypatch.setattr(mmdiag.families, "module_paths", lambda arch: {"projector": "model.connector"})
    with pytest.raises(ConfigError, match="has no module model.connector .the projector.*declare the family's modules"):
        llava.projector_module()
