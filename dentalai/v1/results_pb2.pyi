from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ToothNumbering(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOOTH_NUMBERING_UNSPECIFIED: _ClassVar[ToothNumbering]
    FDI: _ClassVar[ToothNumbering]
    UNIVERSAL: _ClassVar[ToothNumbering]
TOOTH_NUMBERING_UNSPECIFIED: ToothNumbering
FDI: ToothNumbering
UNIVERSAL: ToothNumbering

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "components")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    components: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., components: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class CephImage(_message.Message):
    __slots__ = ("width", "height", "pixel_spacing_mm", "spacing_source")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    SPACING_SOURCE_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    pixel_spacing_mm: float
    spacing_source: str
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., pixel_spacing_mm: _Optional[float] = ..., spacing_source: _Optional[str] = ...) -> None: ...

class Landmark(_message.Message):
    __slots__ = ("id", "name", "x", "y", "confidence")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    x: float
    y: float
    confidence: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class Norm(_message.Message):
    __slots__ = ("mean", "sd")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    SD_FIELD_NUMBER: _ClassVar[int]
    mean: float
    sd: float
    def __init__(self, mean: _Optional[float] = ..., sd: _Optional[float] = ...) -> None: ...

class Measurement(_message.Message):
    __slots__ = ("id", "name", "value", "unit", "norm", "interpretation", "convention")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    NORM_FIELD_NUMBER: _ClassVar[int]
    INTERPRETATION_FIELD_NUMBER: _ClassVar[int]
    CONVENTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    value: float
    unit: str
    norm: Norm
    interpretation: str
    convention: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., norm: _Optional[_Union[Norm, _Mapping]] = ..., interpretation: _Optional[str] = ..., convention: _Optional[str] = ...) -> None: ...

class Classification(_message.Message):
    __slots__ = ("id", "name", "value", "unit", "category", "label", "convention")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONVENTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    value: float
    unit: str
    category: int
    label: str
    convention: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., category: _Optional[int] = ..., label: _Optional[str] = ..., convention: _Optional[str] = ...) -> None: ...

class SummaryIndicator(_message.Message):
    __slots__ = ("id", "value", "unit", "label", "convention")
    ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONVENTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    value: float
    unit: str
    label: str
    convention: str
    def __init__(self, id: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., label: _Optional[str] = ..., convention: _Optional[str] = ...) -> None: ...

class CephSummary(_message.Message):
    __slots__ = ("skeletal_class", "vertical_pattern", "skeletal_indicators", "skeletal_agreement", "skeletal_rule", "vertical_indicators", "vertical_agreement", "vertical_rule")
    SKELETAL_CLASS_FIELD_NUMBER: _ClassVar[int]
    VERTICAL_PATTERN_FIELD_NUMBER: _ClassVar[int]
    SKELETAL_INDICATORS_FIELD_NUMBER: _ClassVar[int]
    SKELETAL_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    SKELETAL_RULE_FIELD_NUMBER: _ClassVar[int]
    VERTICAL_INDICATORS_FIELD_NUMBER: _ClassVar[int]
    VERTICAL_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    VERTICAL_RULE_FIELD_NUMBER: _ClassVar[int]
    skeletal_class: str
    vertical_pattern: str
    skeletal_indicators: _containers.RepeatedCompositeFieldContainer[SummaryIndicator]
    skeletal_agreement: int
    skeletal_rule: str
    vertical_indicators: _containers.RepeatedCompositeFieldContainer[SummaryIndicator]
    vertical_agreement: int
    vertical_rule: str
    def __init__(self, skeletal_class: _Optional[str] = ..., vertical_pattern: _Optional[str] = ..., skeletal_indicators: _Optional[_Iterable[_Union[SummaryIndicator, _Mapping]]] = ..., skeletal_agreement: _Optional[int] = ..., skeletal_rule: _Optional[str] = ..., vertical_indicators: _Optional[_Iterable[_Union[SummaryIndicator, _Mapping]]] = ..., vertical_agreement: _Optional[int] = ..., vertical_rule: _Optional[str] = ...) -> None: ...

class CephResult(_message.Message):
    __slots__ = ("image", "landmarks", "measurements", "classifications", "summary")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    image: CephImage
    landmarks: _containers.RepeatedCompositeFieldContainer[Landmark]
    measurements: _containers.RepeatedCompositeFieldContainer[Measurement]
    classifications: _containers.RepeatedCompositeFieldContainer[Classification]
    summary: CephSummary
    def __init__(self, image: _Optional[_Union[CephImage, _Mapping]] = ..., landmarks: _Optional[_Iterable[_Union[Landmark, _Mapping]]] = ..., measurements: _Optional[_Iterable[_Union[Measurement, _Mapping]]] = ..., classifications: _Optional[_Iterable[_Union[Classification, _Mapping]]] = ..., summary: _Optional[_Union[CephSummary, _Mapping]] = ...) -> None: ...

class PanoImage(_message.Message):
    __slots__ = ("width", "height", "pixel_spacing_mm", "spacing_source")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    SPACING_SOURCE_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    pixel_spacing_mm: float
    spacing_source: str
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., pixel_spacing_mm: _Optional[float] = ..., spacing_source: _Optional[str] = ...) -> None: ...

class Tooth(_message.Message):
    __slots__ = ("fdi", "number", "score", "bbox", "polygon", "area_px", "universal_label", "findings", "raw_score", "check_number")
    FDI_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    POLYGON_FIELD_NUMBER: _ClassVar[int]
    AREA_PX_FIELD_NUMBER: _ClassVar[int]
    UNIVERSAL_LABEL_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    RAW_SCORE_FIELD_NUMBER: _ClassVar[int]
    CHECK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    fdi: int
    number: int
    score: float
    bbox: _containers.RepeatedScalarFieldContainer[float]
    polygon: _struct_pb2.ListValue
    area_px: float
    universal_label: str
    findings: _containers.RepeatedScalarFieldContainer[str]
    raw_score: float
    check_number: bool
    def __init__(self, fdi: _Optional[int] = ..., number: _Optional[int] = ..., score: _Optional[float] = ..., bbox: _Optional[_Iterable[float]] = ..., polygon: _Optional[_Union[_struct_pb2.ListValue, _Mapping]] = ..., area_px: _Optional[float] = ..., universal_label: _Optional[str] = ..., findings: _Optional[_Iterable[str]] = ..., raw_score: _Optional[float] = ..., check_number: _Optional[bool] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("type", "fdi", "number", "score", "polygon", "bbox", "area_px", "area_mm2", "raw_score")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FDI_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    POLYGON_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    AREA_PX_FIELD_NUMBER: _ClassVar[int]
    AREA_MM2_FIELD_NUMBER: _ClassVar[int]
    RAW_SCORE_FIELD_NUMBER: _ClassVar[int]
    type: str
    fdi: int
    number: int
    score: float
    polygon: _struct_pb2.ListValue
    bbox: _containers.RepeatedScalarFieldContainer[float]
    area_px: float
    area_mm2: float
    raw_score: float
    def __init__(self, type: _Optional[str] = ..., fdi: _Optional[int] = ..., number: _Optional[int] = ..., score: _Optional[float] = ..., polygon: _Optional[_Union[_struct_pb2.ListValue, _Mapping]] = ..., bbox: _Optional[_Iterable[float]] = ..., area_px: _Optional[float] = ..., area_mm2: _Optional[float] = ..., raw_score: _Optional[float] = ...) -> None: ...

class FindingNotAssessed(_message.Message):
    __slots__ = ("type", "reason")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    type: str
    reason: str
    def __init__(self, type: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PanoSummary(_message.Message):
    __slots__ = ("tooth_count", "edentulous_jaws")
    TOOTH_COUNT_FIELD_NUMBER: _ClassVar[int]
    EDENTULOUS_JAWS_FIELD_NUMBER: _ClassVar[int]
    tooth_count: int
    edentulous_jaws: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tooth_count: _Optional[int] = ..., edentulous_jaws: _Optional[_Iterable[str]] = ...) -> None: ...

class PanoResult(_message.Message):
    __slots__ = ("image", "numbering", "teeth", "missing_teeth", "summary", "findings", "findings_assessed", "findings_not_assessed")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    NUMBERING_FIELD_NUMBER: _ClassVar[int]
    TEETH_FIELD_NUMBER: _ClassVar[int]
    MISSING_TEETH_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_ASSESSED_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_NOT_ASSESSED_FIELD_NUMBER: _ClassVar[int]
    image: PanoImage
    numbering: ToothNumbering
    teeth: _containers.RepeatedCompositeFieldContainer[Tooth]
    missing_teeth: _containers.RepeatedScalarFieldContainer[int]
    summary: PanoSummary
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    findings_assessed: _containers.RepeatedScalarFieldContainer[str]
    findings_not_assessed: _containers.RepeatedCompositeFieldContainer[FindingNotAssessed]
    def __init__(self, image: _Optional[_Union[PanoImage, _Mapping]] = ..., numbering: _Optional[_Union[ToothNumbering, str]] = ..., teeth: _Optional[_Iterable[_Union[Tooth, _Mapping]]] = ..., missing_teeth: _Optional[_Iterable[int]] = ..., summary: _Optional[_Union[PanoSummary, _Mapping]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., findings_assessed: _Optional[_Iterable[str]] = ..., findings_not_assessed: _Optional[_Iterable[_Union[FindingNotAssessed, _Mapping]]] = ...) -> None: ...
