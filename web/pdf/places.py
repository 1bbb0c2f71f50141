"""Where a signatory signs from, as annex A prints it: the post town of their postcode area.

A UK postcode starts with its area, one or two letters ("CF" in "CF10 1EP", "B" in
"B1 1AA"). Each of the 121 areas of the UK, and the three Crown Dependencies that use
the same scheme, is named after a post town; we print that town ("Cardiff"), or the
name people know the area by where the town alone would mislead ("Outer Hebrides",
"Shetland", "Teesside"). The eight London areas all read "London".

This is a coarse place on purpose: a department sees where support comes from, and no
signer is located more closely than their postcode area. Nothing is invented: an absent
or unrecognised postcode (BFPO, "GIR 0AA", a typo kept from a paper form) gives "".

Regions and nations (for annex C) are not defined here: they come from
`web.signatures.services.AREA_REGIONS`, the one table the organiser's counts use too,
so the letter's numbers match the Signatures tab.
"""

from __future__ import annotations

import re

# Area -> post town (or the area's common name), from Royal Mail's list of areas.
AREA_TOWNS: dict[str, str] = {
    "AB": "Aberdeen",
    "AL": "St Albans",
    "B": "Birmingham",
    "BA": "Bath",
    "BB": "Blackburn",
    "BD": "Bradford",
    "BH": "Bournemouth",
    "BL": "Bolton",
    "BN": "Brighton",
    "BR": "Bromley",
    "BS": "Bristol",
    "BT": "Belfast",
    "CA": "Carlisle",
    "CB": "Cambridge",
    "CF": "Cardiff",
    "CH": "Chester",
    "CM": "Chelmsford",
    "CO": "Colchester",
    "CR": "Croydon",
    "CT": "Canterbury",
    "CV": "Coventry",
    "CW": "Crewe",
    "DA": "Dartford",
    "DD": "Dundee",
    "DE": "Derby",
    "DG": "Dumfries",
    "DH": "Durham",
    "DL": "Darlington",
    "DN": "Doncaster",
    "DT": "Dorchester",
    "DY": "Dudley",
    "E": "London",
    "EC": "London",
    "EH": "Edinburgh",
    "EN": "Enfield",
    "EX": "Exeter",
    "FK": "Falkirk",
    "FY": "Blackpool",
    "G": "Glasgow",
    "GL": "Gloucester",
    "GU": "Guildford",
    "HA": "Harrow",
    "HD": "Huddersfield",
    "HG": "Harrogate",
    "HP": "Hemel Hempstead",
    "HR": "Hereford",
    "HS": "Outer Hebrides",
    "HU": "Hull",
    "HX": "Halifax",
    "IG": "Ilford",
    "IP": "Ipswich",
    "IV": "Inverness",
    "KA": "Kilmarnock",
    "KT": "Kingston upon Thames",
    "KW": "Kirkwall",
    "KY": "Kirkcaldy",
    "L": "Liverpool",
    "LA": "Lancaster",
    "LD": "Llandrindod Wells",
    "LE": "Leicester",
    "LL": "Llandudno",
    "LN": "Lincoln",
    "LS": "Leeds",
    "LU": "Luton",
    "M": "Manchester",
    "ME": "Rochester",
    "MK": "Milton Keynes",
    "ML": "Motherwell",
    "N": "London",
    "NE": "Newcastle upon Tyne",
    "NG": "Nottingham",
    "NN": "Northampton",
    "NP": "Newport",
    "NR": "Norwich",
    "NW": "London",
    "OL": "Oldham",
    "OX": "Oxford",
    "PA": "Paisley",
    "PE": "Peterborough",
    "PH": "Perth",
    "PL": "Plymouth",
    "PO": "Portsmouth",
    "PR": "Preston",
    "RG": "Reading",
    "RH": "Redhill",
    "RM": "Romford",
    "S": "Sheffield",
    "SA": "Swansea",
    "SE": "London",
    "SG": "Stevenage",
    "SK": "Stockport",
    "SL": "Slough",
    "SM": "Sutton",
    "SN": "Swindon",
    "SO": "Southampton",
    "SP": "Salisbury",
    "SR": "Sunderland",
    "SS": "Southend-on-Sea",
    "ST": "Stoke-on-Trent",
    "SW": "London",
    "SY": "Shrewsbury",
    "TA": "Taunton",
    "TD": "Galashiels",
    "TF": "Telford",
    "TN": "Tonbridge",
    "TQ": "Torquay",
    "TR": "Truro",
    "TS": "Teesside",
    "TW": "Twickenham",
    "UB": "Southall",
    "W": "London",
    "WA": "Warrington",
    "WC": "London",
    "WD": "Watford",
    "WF": "Wakefield",
    "WN": "Wigan",
    "WR": "Worcester",
    "WS": "Walsall",
    "WV": "Wolverhampton",
    "YO": "York",
    "ZE": "Shetland",
    # The Crown Dependencies share the scheme.
    "GY": "Guernsey",
    "IM": "Isle of Man",
    "JE": "Jersey",
}

# The area: the letters before the first digit of the outward code.
_AREA_RE = re.compile(r"([A-Z]{1,2})[0-9]")


def postcode_area(postcode: str) -> str:
    """The area letters of a postcode ("sw1a 1aa" -> "SW"), or "" when there are none."""
    match = _AREA_RE.match(postcode.strip().upper())
    return match.group(1) if match else ""


def place_for_area(area: str) -> str:
    """The post town of an area ("CF" -> "Cardiff"), "" when the area is unknown."""
    return AREA_TOWNS.get(area.strip().upper(), "")


def place_for_postcode(postcode: str) -> str:
    """The post town of a postcode's area, "" when absent or unrecognised."""
    return place_for_area(postcode_area(postcode))
