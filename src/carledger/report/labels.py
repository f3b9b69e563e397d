"""What a printed report calls things: Korean first, English beside it.

Data only, keyed by the stable codes of the ledger (record types, fact codes,
statuses), so a new code shows up as itself until someone names it here; the test
of the printed report checks every record type and fact code has a name.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FACTS", "RECORD_TYPES", "SEVERITIES", "STATUSES", "record_type", "status"]

#: record type -> (Korean, English)
RECORD_TYPES: Final[dict[str, tuple[str, str]]] = {
    "vehicle.register": ("제작·신규 등록", "Vehicle registered"),
    "registration.record": ("등록 정보", "Registration"),
    "ownership.transfer": ("소유권 이전", "Ownership transfer"),
    "vehicle.scrap": ("폐차", "Scrapped"),
    "trade.purchase": ("매입", "Dealer purchase"),
    "listing.open": ("매물 등록", "Listed for sale"),
    "listing.close": ("매물 종료", "Listing closed"),
    "trade.sale": ("매도", "Dealer sale"),
    "gate.entry": ("시장 입차", "Market gate entry"),
    "gate.exit": ("시장 출차", "Market gate exit"),
    "inspection.record": ("성능·상태 점검", "Performance inspection"),
    "odometer.reading": ("주행거리 기록", "Odometer reading"),
    "service.record": ("정비", "Service"),
    "accident.record": ("사고", "Accident"),
    "insurance.claim": ("보험 처리", "Insurance claim"),
    "battery.report": ("배터리 진단", "Battery report"),
    "usage.start": ("대여·리스 시작", "Rental or lease start"),
    "usage.end": ("대여·리스 종료", "Rental or lease end"),
    "part.install": ("부품 장착", "Part installed"),
    "part.remove": ("부품 탈거", "Part removed"),
    "recall.issue": ("리콜 발령", "Recall issued"),
    "recall.complete": ("리콜 조치", "Recall done"),
    "lien.register": ("저당·압류 등록", "Lien registered"),
    "lien.release": ("저당·압류 해지", "Lien released"),
    "theft.report": ("도난 신고", "Theft reported"),
    "theft.recover": ("도난 회수", "Theft recovered"),
    "record.correct": ("기록 정정", "Correction"),
    "record.dispute": ("이의 제기", "Dispute"),
    "dispute.resolve": ("이의 처리", "Dispute resolved"),
    "odometer.exception": ("계기판 교체", "Odometer replaced"),
}

#: fact code (carledger.vehicle.facts) -> (Korean, English)
FACTS: Final[dict[str, tuple[str, str]]] = {
    "odometer_exception": ("계기판 교체", "Odometer replaced"),
    "odometer_rollback": ("주행거리 조작 의심", "Odometer rollback"),
    "inspection_odometer_below_earlier": (
        "점검 주행거리가 이전 기록보다 적음",
        "Inspection odometer below earlier reading",
    ),
    "odometer_implausible": ("비정상 주행거리", "Implausible odometer reading"),
    "odometer_gap": ("주행거리 기록 공백", "Gap in odometer readings"),
    "car_not_present": ("매물 차량 시장 부재", "Listed car not at the market"),
    "listing_inspection_expired": ("매물 점검 유효기간 만료", "Listing's inspection expired"),
    "inspection_accident": ("점검상 사고 이력", "Accident repair found at inspection"),
    "inspection_simple_repair": ("점검상 단순 수리", "Simple repair found at inspection"),
    "inspection_missed_frame_damage": (
        "점검에서 누락된 골격 손상",
        "Frame damage missed by inspection",
    ),
    "vin_marking_suspect": ("차대번호 표기 이상", "VIN marking suspect"),
    "illegal_tuning": ("불법 튜닝", "Illegal tuning"),
    "accident_record": ("사고 기록", "Accident on record"),
    "scrapped": ("폐차", "Scrapped"),
    "stolen": ("도난", "Reported stolen"),
    "active_lien": ("저당·압류 있음", "Active lien"),
    "open_recall": ("미조치 리콜", "Open recall"),
    "open_dispute": ("이의 제기 중", "Open dispute"),
    "void_record": ("무효 처리된 기록", "Voided record"),
    "commercial_use": ("영업용 사용 이력", "Commercial use"),
}

#: fact severity -> (Korean, English)
SEVERITIES: Final[dict[str, tuple[str, str]]] = {
    "critical": ("위험", "Critical"),
    "warning": ("주의", "Warning"),
    "info": ("참고", "Info"),
}

#: vehicle status and record status -> (Korean, English)
STATUSES: Final[dict[str, tuple[str, str]]] = {
    "active": ("운행", "Active"),
    "listed": ("매물", "Listed for sale"),
    "stolen": ("도난", "Stolen"),
    "scrapped": ("폐차", "Scrapped"),
    "unknown": ("기록 없음", "No records"),
    "valid": ("유효", "Valid"),
    "corrected": ("정정됨", "Corrected"),
    "disputed": ("이의 제기됨", "Disputed"),
    "void": ("무효", "Void"),
}


def _pair(table: dict[str, tuple[str, str]], code: str) -> str:
    korean, english = table.get(code, (code, code))
    return f"{korean} ({english})" if korean != english else code


def record_type(code: str) -> str:
    """``매입 (Dealer purchase)``; an unnamed type shows as its code."""
    return _pair(RECORD_TYPES, code)


def status(code: str) -> str:
    """``운행 (Active)``; an unnamed status shows as its code."""
    return _pair(STATUSES, code)
