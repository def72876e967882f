"""Compiled lexicons of the triage rules. Every text they see is already lower-cased.

Python's ``re`` tries every branch of an alternation at every position, so each pattern
carries trigger substrings: literals one of which any match must contain. ``in`` on a str
is a fast C scan, so on most mail most patterns never run. Tests pin each pattern's
positive examples, which is what keeps the triggers honest.
"""

from __future__ import annotations

import re
import unicodedata


class Rx:
    """A regex that runs only when one of its trigger substrings occurs in the text."""

    __slots__ = ("pattern", "triggers")

    def __init__(self, triggers: tuple[str, ...], *parts: str, flags: int = 0) -> None:
        self.triggers = triggers
        self.pattern = re.compile("|".join(f"(?:{p})" for p in parts), flags)

    def triggered(self, text: str) -> bool:
        # A plain loop: a generator inside any() costs more than the scans themselves.
        for trigger in self.triggers:
            if trigger in text:
                return True
        return not self.triggers

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text) if self.triggered(text) else None

    def findall(self, text: str) -> list[str]:
        return [m.group(0) for m in self.pattern.finditer(text)] if self.triggered(text) else []


class AnyRx:
    """The first match of several guarded patterns."""

    __slots__ = ("parts",)

    def __init__(self, *parts: Rx) -> None:
        self.parts = parts

    def search(self, text: str) -> re.Match[str] | None:
        for part in self.parts:
            found = part.search(text)
            if found:
                return found
        return None


# --------------------------------------------------------------------------- deadlines

_WEEKDAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_TIME = r"\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)|\d{1,2}:\d{2}|noon|midnight"

DEADLINE = AnyRx(
    Rx(
        ("deadline", "no later than", "close of business"),
        r"\bdeadline\b",
        r"\bno later than\b",
        r"\bclose of business\b",
    ),
    Rx(
        ("due",),
        r"\bdue\s+(?:by|on|date|today|tomorrow|tonight|" + _WEEKDAY + "|" + _MONTH + r"\s*\d|\d)",
    ),
    Rx(("eod", "eow", "cob", "eob"), r"\b(?:eod|eow|cob|eob)\b"),
    Rx(("end of",), r"\bend of (?:the )?(?:day|week|month|quarter|business)\b"),
    Rx(
        ("by ",),
        r"\bby (?:this |next )?(?:" + _WEEKDAY + r"|today|tonight|tomorrow|" + _TIME + r")\b",
        r"\bby " + _MONTH + r"\s*\d{1,2}\b",
        r"\bby (?:the )?\d{1,2}(?:st|nd|rd|th)\b",
    ),
    Rx(("before ",), r"\bbefore (?:" + _TIME + r")\b"),
    Rx(("within ",), r"\bwithin (?:the next )?\d+\s*(?:hours?|hrs?|days?|business days)\b"),
)

# Asking the reader to do something, with consequences: an automated mail that says this
# is not a plain notification, and the rules leave it to the next stage.
OBLIGATION = AnyRx(
    Rx(
        ("required", "mandatory", "must", "failure to", "to avoid", "past due", "overdue", "rsvp"),
        r"\brequired\b",
        r"\bmandatory\b",
        r"\bmust\b",
        r"\bfailure to\b",
        r"\bto avoid\b",
        r"\bpast due\b",
        r"\boverdue\b",
        r"\brsvp\b",
    ),
    Rx(
        ("will ",),
        r"\bwill (?:be )?(?:suspended|cancell?ed|terminated|restricted|closed|"
        r"deactivated)\b",
    ),
    Rx(
        ("please ", "confirm "),
        r"\bplease (?:confirm|rsvp|respond|reply|renew|review|approve|"
        r"sign|complete|pay)\b",
        r"\bconfirm (?:your|by|attendance)\b",
    ),
)

# --------------------------------------------------------------------------- injection

INJECTION = AnyRx(
    Rx(
        ("ignore", "disregard", "forget", "override"),
        r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+|"
        r"my\s+)?(?:previous|prior|above|earlier|preceding|system|original|existing)\s+"
        r"(?:instructions?|prompts?|directions|directives|rules|guidelines|context)",
    ),
    # A salutation to an AI, closed by punctuation: "Dear AI assistant," "Note to the bot:".
    Rx(
        (" ai", "a.i.", "llm", "gpt", "copilot", "language model", "assistant", "bot"),
        r"\b(?:dear|hey|hi|hello|attention|note (?:to|for)|message (?:to|for)|instructions? "
        r"(?:to|for))[ \t,:]+(?:the )?(?:ai|a\.i\.|llm|gpt|chatgpt|copilot|language model|"
        r"(?:ai|email|e-mail|virtual|executive|digital) (?:assistant|agent)|assistant|bot)"
        r"[ \t]*[,:;!.\n-]",
    ),
    Rx(
        ("if you are a",),
        r"\bif you are an? (?:ai|a\.i\.|llm|language model|"
        r"(?:ai |email |virtual )?assistant|bot)\b",
    ),
    Rx(
        (
            "reading this",
            "processing this",
            "summarizing this",
            "summarising this",
            "handling this",
            "triaging this",
        ),
        r"\b(?:ai|llm|language model|automated) (?:assistant|agent|system|model)s? "
        r"(?:reading|processing|summari[sz]ing|handling|triaging) this\b",
    ),
    Rx(
        ("forward ",),
        r"\bforward (?:all|every|each|any|the last \d+)\b.{0,40}?\b(?:e-?mails?|"
        r"messages|mail|correspondence|inbox|attachments|documents)\b",
    ),
    Rx(
        ("prompt", "instructions"),
        r"\b(?:reveal|print|output|repeat|show)\b.{0,20}\b(?:your|the) system prompt\b",
        r"\b(?:reveal|print|output|repeat) (?:me )?your (?:system )?(?:prompt|instructions)\b",
        r"\bnew (?:system )?instructions\s*:",
    ),
    Rx(
        ("do not ",),
        r"\bdo not (?:tell|inform|notify|alert|mention (?:this )?to) (?:the )?"
        r"(?:user|recipient|your (?:user|principal|boss|owner|executive))\b",
    ),
    Rx(
        ("<|", "[inst", "[/inst", "##"),
        r"<\|?(?:system|im_start|im_end|endoftext)\|?>|\[/?inst\]",
        r"^#{2,}\s*(?:system|instructions?)\b",
        flags=re.MULTILINE,
    ),
)

# --------------------------------------------------------------------------- phishing

CREDENTIAL_LURE = AnyRx(
    Rx(
        ("verify", "confirm", "validate", "update", "restore", "reactivate", "unlock"),
        r"\b(?:verify|confirm|validate|update|restore|reactivate|unlock)\s+(?:your\s+)?(?:account|"
        r"identity|credentials|password|login|mailbox|email|payment (?:details|information))\b",
    ),
    Rx(
        (
            "suspended",
            "locked",
            "disabled",
            "flagged",
            "compromised",
            "on hold",
            "deactivated",
            "restricted",
        ),
        r"\baccount\b.{0,30}\b(?:suspended|locked|disabled|flagged|compromised|on hold|"
        r"deactivated|restricted)\b",
        r"\b(?:suspended|locked|disabled|flagged|compromised)\b.{0,30}\baccount\b",
    ),
    Rx(("unusual",), r"\bunusual (?:sign-?in|login|activity)\b"),
    Rx(("password",), r"\bpassword (?:expires|expired|will expire|reset required)\b"),
)
PAYMENT_LURE = AnyRx(
    Rx(
        (
            "wire transfer",
            "gift card",
            "giftcard",
            "routing number",
            "processing fee",
            "social security number",
            "western union",
            "bitcoin wallet",
        ),
        r"\bwire transfer\b",
        r"\bgift ?cards?\b",
        r"\brouting number\b",
        r"\bprocessing fee\b",
        r"\bsocial security number\b",
        r"\bwestern union\b",
        r"\bbitcoin wallet\b",
    ),
    Rx(
        ("bank", "account ", "payment "),
        r"\b(?:bank(?:ing)?|account|payment) (?:details|information|info|routing)\b",
    ),
    Rx(("ssn",), r"\bssn\b"),
    Rx(("overdue", "past due"), r"\b(?:invoice|payment|balance)\b.{0,40}\b(?:overdue|past due)\b"),
    Rx(("settle",), r"\bsettle (?:the |your )?(?:balance|invoice|payment|account)\b"),
)
ADVANCE_FEE = Rx(
    (
        "inheritance",
        "sweepstake",
        "lottery",
        "grand prize",
        "prize ",
        "unclaimed ",
        "dormant ",
        "trust ",
        "beneficiary",
        "you have been ",
        "claim your ",
    ),
    r"\binheritance\b",
    r"\bsweepstakes?\b",
    r"\blottery\b",
    r"\bgrand prize\b",
    r"\bprize (?:money|winner|claim)\b",
    r"\bunclaimed (?:funds?|estate|inheritance|prize)\b",
    r"\b(?:dormant|trust) (?:fund|account)\b",
    r"\bbeneficiary\b",
    r"\byou have been (?:selected|chosen)\b",
    r"\bclaim your (?:prize|winnings|funds|reward)\b",
)
LINK = Rx(
    ("http", "hxxp", "www", "click ", "["),
    r"\b(?:https?|hxxps?)\s*:\s*/\s*/",
    r"\bwww\s*\.\s*\w",
    r"\bclick (?:here|below|the link)\b",
    r"\[(?:link|click here|[a-z0-9-]+\.[a-z]{2,}[^\]]*)\]",
)
URGENCY = Rx(
    (
        "immediately",
        "urgent",
        "act now",
        "act fast",
        "right away",
        "within ",
        "expire",
        "time sensitive",
        "time-sensitive",
        "asap",
        "final notice",
        "permanently",
    ),
    r"\bimmediately\b",
    r"\burgent(?:ly)?\b",
    r"\bact (?:now|fast)\b",
    r"\bright away\b",
    r"\bwithin \d+ hours\b",
    r"\bexpires?\b",
    r"\btime.sensitive\b",
    r"\basap\b",
    r"\bfinal notice\b",
    r"\bpermanently\b",
)

# --------------------------------------------------------------------------- spam

# Scored the SpamAssassin way: weighted families added up against a threshold. One family
# counts once, so a long list of drug names is not ten times the evidence of one.
_DRUG_WORDS = (
    "viagra",
    "cialis",
    "levitra",
    "xanax",
    "valium",
    "vicodin",
    "hydrocodone",
    "oxycodone",
    "codeine",
    "tramadol",
    "phentermine",
    "ambien",
    "soma",
    "propecia",
    "meridia",
    "lorazepam",
    "zoloft",
    "prozac",
    "paxil",
    "lipitor",
    "celebrex",
    "rivotril",
    "ativan",
    "zyban",
)
_PHARMACY_WORDS = (
    "pharmacy",
    "pharmacies",
    "prescription",
    "prescriptions",
    "rx",
    "meds",
    "medications",
    "medication",
    "pills",
    "painkillers",
)

_LEET = str.maketrans("10@$!|3l", "ioasiiei")
_NOT_LETTER = re.compile(r"[^a-z\s]+")
_REPEATS = re.compile(r"([a-z])\1+")


def squash(text: str) -> str:
    """Fold the spelling games of drug spam ('v1agra', 'viaagrra', 'vãlium') to one form.

    Works on whole texts at once (a handful of C-level passes) rather than word by word.
    """
    if not text.isascii():
        # NFKD splits accents off their letters; the ASCII round trip drops them (and any
        # other non-Latin character, which no drug name contains) in one C-level pass.
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = _NOT_LETTER.sub("", text.translate(_LEET))
    return _REPEATS.sub(r"\1", text)


DRUGS = frozenset(map(squash, _DRUG_WORDS))
PHARMACY = frozenset(map(squash, _PHARMACY_WORDS))
# Letters split by separators ("v . i . c . o . d . i . n") are joined before squashing.
SPACED_LETTERS = re.compile(r"\b(?:[a-z0-9@$|!][\s.\-_*'`^,;:~\[\]]{1,3}){3,}[a-z0-9]\b")
SEPARATORS = re.compile(r"[\s.\-_*'`^,;:~\[\]]")
WORD_BREAKS = re.compile(r"[,;:()\[\]{}<>\"/]")

SPAM_FAMILIES: tuple[tuple[str, int, Rx], ...] = (
    (
        "adult",
        3,
        Rx(
            (
                "naked",
                "sex",
                "erection",
                "penis",
                "enlarge",
                "soulmate",
                "single",
                "striptease",
                "ejaculat",
                "ejakulat",
                "male enhancement",
                "adult ",
                "porn",
                "xxx",
                "dicks",
            ),
            r"\bnaked\b",
            r"\bsex life\b",
            r"\berections?\b",
            r"\bpenis\b",
            r"\benlarge",
            r"\bsoulmate\b",
            r"\bhot singles?\b",
            r"\bstriptease\b",
            r"\beja[ck]ulat",
            r"\bmale enhancement\b",
            r"\badult (?:content|dating)\b",
            r"\bporn",
            r"\bxxx\b",
            r"\bdicks\b",
            r"\bjust sex\b",
        ),
    ),
    (
        "weight_loss",
        2,
        Rx(
            ("weight", "lose ", "fat", "diet pill", "appetite"),
            r"\bweight[- ]loss\b",
            r"\blose (?:weight|\d+ ?(?:lbs|pounds|kg))\b",
            r"\bfat\s*-?\s*(?:burn|bind|band|loss)",
            r"\bdiet pills?\b",
            r"\bappetite suppress",
        ),
    ),
    (
        "luxury_replica",
        3,
        Rx(
            ("repli", "rol", "r o l", "ro l", "r ol", "wrist", "designer"),
            r"\brepli+ca(?:s|tions?)?\b",
            r"\br\s?o\s?l\s?e\s?x\b",
            r"\bwrist ?watches\b",
            r"\bdesigner\b.{0,30}\b(?:watches|bags)\b",
        ),
    ),
    (
        "cheap_software",
        3,
        Rx(
            ("software", "warez", "cracked "),
            r"\b(?:cheap|discount(?:ed)?|oem)\b.{0,30}\bsoftware\b",
            r"\bsoftware\b.{0,30}\b(?:under|for only|from) \$",
            r"\bwarez\b",
            r"\bcracked (?:software|tools|developer)",
        ),
    ),
    (
        "loans_stocks",
        2,
        Rx(
            (
                "mortage",
                "mortgage",
                "refinanc",
                "nance",
                "bad credit",
                "debt consolidation",
                "rate",
                "stock",
                "current price",
                "guaranteed",
                "passive income",
                "make money",
                "work from home",
                "casino",
                "offshore",
                "pink sheets",
            ),
            r"\bmort(?:g)?age\b",
            r"\brefinanc",
            r"\bre\s*-\s*f[il]nance\b",
            r"\bbad credit\b",
            r"\bdebt consolidation\b",
            r"\blow(?:est)? (?:interest )?rates?\b",
            r"\bstock (?:alert|watch|pick)",
            r"\bcurrent price\s*:",
            r"\bguaranteed (?:returns|income)\b",
            r"\bpassive income\b",
            r"\bmake money\b",
            r"\bwork from home\b",
            r"\bcasino\b",
            r"\boffshore (?:bank|account)",
            r"\bpink sheets\b",
        ),
    ),
    ("advance_fee", 3, ADVANCE_FEE),
    (
        "bulk_footer",
        2,
        Rx(
            (
                "subscribe",
                "unsub",
                "to remove",
                "no longer wish",
                "stop receiving",
                "opt",
                "remove me",
                "removal instructions",
            ),
            r"\bunsubscribe\b",
            r"\bunsub\b",
            r"\bun\s*-\s*subscribe\b",
            r"\bto remove\b",
            r"\bno longer wish to receive\b",
            r"\bstop receiving\b",
            r"\bopt[ -]?out\b",
            r"\bremove me\b",
            r"\bremoval instructions\b",
        ),
    ),
    (
        "ad_disclosure",
        3,
        Rx(
            ("advertisement",),
            r"\bthis (?:e-?\s*mail|message) (?:message )?is an advertisement\b",
            r"\badvertisement and\s*/\s*or solicitation\b",
        ),
    ),
    (
        "spam_phrase",
        2,
        Rx(
            (
                "free",
                "risk",
                "money",
                "no questions",
                "believe",
                "price",
                "lifetime",
                "no p",
                "no prior",
                "ship",
                "costs nothing",
                "not spam",
                "not a scam",
            ),
            r"\btotally free\b",
            r"\b100\s*%\s*free\b",
            r"\brisk[- ]free\b",
            r"\bmoney[- ]back\b",
            r"\bno questions asked\b",
            r"\byou won\s*'\s*t believe\b",
            r"\b(?:best|lowest|unbeatable|low) prices?\b",
            r"\bonce in a lifetime\b",
            r"\bno (?:prior )?p\W*r\W*e\W*s\W*c\W*r\W*i\W*p\W*t\W*i\W*o\W*n",
            r"\bship(?:ped|ping)? (?:world\s*-?\s*wide|discreet)",
            r"\bit costs nothing\b",
            r"\bthis is not (?:spam|a scam)\b",
        ),
    ),
    (
        "sales_pitch",
        1,
        Rx(
            (
                "click",
                "order ",
                "buy ",
                "shop ",
                "visit our",
                "save ",
                "special ",
                "free ",
                "%",
                "discreet",
                "satisfaction",
            ),
            r"\bclick (?:here|below)\b",
            r"\b(?:order|buy|shop) (?:now|today|"
            r"online)\b",
            r"\bvisit our (?:site|website|shop|store)\b",
            r"\bsave (?:up to|big)\b",
            r"\bspecial (?:offer|deal|price)s?\b",
            r"\bfree (?:shipping|trial|gift|bonus)\b",
            r"\b\d{1,2}\s*%\s*-?\s*off\b",
            r"\bdiscreet(?:ly)?\b",
            r"\bsatisfaction guarantee",
        ),
    ),
    (
        "obfuscated_link",
        2,
        Rx(
            ("http", "hxxp", "www"),
            r"\b(?:https?|hxxps?)\s+:\s*/\s*/",
            r"\bhxxps?://",
            r"\bwww\s+\.\s+\w",
        ),
    ),
    # A literal "=?utf-8?q?" means a header encoded by hand, badly: bulk-mailer work.
    ("raw_encoded_word", 2, Rx(("utf", "iso"), r"=\s*\?\s*(?:utf|iso)\s*-\s*8")),
)
SALUTATION = re.compile(
    r"\s*(?:dear (?:sir|madam|friend|customer|valued|user|member)|"
    r"(?:hello|hi) (?:sir|friend))\b"
)
SHOUTING = re.compile(r"!{3,}|\b[A-Z]{4,}\b(?:\s+\b[A-Z]{3,}\b){3,}")
PRICE = Rx(("$", "usd"), r"\$\s?\d+(?:[.,]\d{2})?\b", r"\b\d+(?:[.,]\d{2})?\s?(?:\$|usd\b)")

# Abused top-level domains (Spamhaus and Interisle yearly reports); a weak signal alone.
ABUSED_TLDS = frozenset(
    {
        "biz",
        "top",
        "ru",
        "su",
        "cc",
        "xyz",
        "click",
        "info",
        "win",
        "loan",
        "work",
        "tk",
        "ml",
        "ga",
        "cf",
        "gq",
        "pw",
        "icu",
        "buzz",
        "rest",
        "cam",
        "bid",
        "review",
        "date",
        "racing",
        "stream",
        "download",
        "men",
        "party",
        "trade",
        "webcam",
        "science",
        "cyou",
        "sbs",
        "bond",
    }
)
# Words that honest company names rarely carry. Whole hyphen-separated tokens, or (for the
# longer ones) the start or end of a label: "instant-cash", "secureoffer".
SPAMMY_DOMAIN_TOKEN = re.compile(
    r"(?:^|[.-])(?:deals?|promo(?:s|tions?)?|prizes?|cash|offers?|claim|win|winner|bonus|free|"
    r"cheap|discounts?|pharma|meds|casino|loans?|lotto|rewards?|sweepstakes)(?=[.-]|$)"
    r"|(?:deals|promo|prize|offer|bonus|lotto|casino|pharma|cheap|claim)(?=[.-])"
    r"|(?:^|[.-])(?:deals|promo|prize|bonus|lotto|casino|pharma|cheap)"
)
FREEMAIL = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "protonmail.com",
        "proton.me",
        "gmx.com",
        "gmx.de",
        "mail.com",
        "email.com",
        "yandex.ru",
        "fastmail.com",
        "zoho.com",
    }
)
LOCAL_DIGITS = re.compile(r"\d{4,}")

# --------------------------------------------------------------------------- promotions

# Commercial offers with a clock running: vendor marketing that wants a yes today.
OFFER = Rx(
    (
        "%",
        "discount",
        "code",
        "flash ",
        "offer",
        "pricing",
        "price",
        "rate",
        "deal",
        "promotion",
        "sponsor",
        "tier",
        "lock in",
        "reserved ",
        "curated ",
    ),
    r"\b\d{1,2}\s*%\s*(?:off|discount|savings?|reduction)\b",
    r"\bdiscount(?:ed)?\b",
    r"\b(?:promo|coupon|discount) code\b",
    r"\bflash (?:sale|deal)\b",
    r"\b(?:special|exclusive|limited[- ]time) (?:offer|pricing|price|rate|deal|promotion)\b",
    r"\bsponsor(?:ship)? (?:tier|package|slot)s?\b",
    r"\b(?:platinum|premium|premier|gold) (?:sponsor(?:ship)?|tier)\b",
    r"\block in (?:your |this |the )?(?:rate|pricing|price|discount|seat|spot|slot|tier)",
    r"\bpricing (?:resets|reverts|expires)\b",
    r"\bstandard pricing\b",
    r"\b(?:reserved|curated) (?:seat|spot|tier)\b",
)
PRESSURE = Rx(
    (
        "last chance",
        "hour",
        "hr",
        "expire",
        "ends ",
        "closes",
        "closing",
        "expiring",
        "before it",
        "before the",
        "limited",
        "while ",
        "window",
        "only ",
        "valid only",
        "do not delay",
        "do not miss",
        "released",
    ),
    r"\blast chance\b",
    r"\b(?:only )?\d+\s*(?:hours?|hrs?) (?:left|remaining)\b",
    r"\b(?:final|last) \d+\s*hours?\b",
    r"\bexpires? (?:today|tonight|in|at|soon)\b",
    r"\b(?:ends|closes|closing|expiring) (?:today|tonight|at|in|soon|fast)\b",
    r"\bbefore (?:it|the (?:offer|window|deal|price)) (?:expires|closes|resets)\b",
    r"\blimited[- ]time\b",
    r"\bwhile (?:supplies|spots|seats) last\b",
    r"\b(?:window|offer|deal) (?:is )?(?:closing|closes)\b",
    r"\bonly \w+ (?:slots?|spots?|seats?) left\b",
    r"\bvalid only (?:through|until)\b",
    r"\bdo not (?:delay|miss)\b",
    r"\bgets? released\b",
)

# --------------------------------------------------------------------------- auto-replies

AUTO_REPLY_SUBJECT = re.compile(
    r"\s*(?:automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|out of (?:the )?office"
    r"|ooo\b|abwesenheitsnotiz|r[ée]ponse automatique|respuesta autom[áa]tica"
    r"|risposta automatica|absent\b)"
)
AUTO_REPLY_OPENING = re.compile(
    r"\W*(?:auto[- ]?reply|automatic reply|autoreply|out of (?:the )?office)\b"
)
OOO_STATEMENT = Rx(
    ("i am ", "i'm "),
    r"\bi am (?:currently )?(?:out of (?:the )?office|away from (?:the|my) (?:office|desk)|"
    r"on (?:annual |parental |sick )?leave|on vacation|on holiday)\b",
    r"\bi(?:'m| am) out of (?:the )?office\b",
)
OOO_RETURN = Rx(
    ("return", "be back"),
    r"\b(?:will|shall) (?:return|be back)\b",
    r"\bupon my return\b",
    r"\bwhen i return\b",
    r"\breturn(?:ing)? (?:to the office )?on\b",
)
OOO_ABSENCE = Rx(
    ("absence", "limited", "urgent", "immediate"),
    r"\bin my absence\b",
    r"\blimited (?:access to )?(?:e-?mail|connectivity)(?: access)?\b",
    r"\bfor (?:urgent|immediate) (?:matters|issues|questions|assistance|escalations|"
    r"\w+ (?:matters|issues|questions|concerns))\b",
)

# --------------------------------------------------------------------------- senders

NO_REPLY_LOCAL = re.compile(
    r"(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|notifications?|notify|alerts?|"
    r"mailer-daemon|postmaster|bounces?|automated|auto-confirm)(?:[-_.+].*)?"
)
MARKETING_LOCAL = re.compile(
    r"(?:newsletters?|news|marketing|promo(?:s|tions?)?|offers?|deals?|campaigns?|mailer|"
    r"digest|e-?news)(?:[-_.+].*)?"
)
ESP_HEADERS = (
    "x-campaign",
    "x-campaignid",
    "x-mc-user",
    "x-sg-eid",
    "x-mailgun-tag",
    "x-sfmc-stack",
    "x-marketo-id",
    "x-hs-email",
    "feedback-id",
)
ALERT_SUBJECT = re.compile(
    r"\b(?:fail(?:ed|ure)?|error|alert|security|incident|outage|down|"
    r"declined|breach|blocked)\b"
)
FAKE_REPLY = re.compile(r"\s*(?:re|fwd?|aw)\s*:")

# --------------------------------------------------------------------------- structure

QUOTE_START = re.compile(
    r"^\s*(?:On .{0,300}?wrote:|-{2,}\s*Original Message|-{2,}\s*Forwarded message"
    r"|From: .{0,200}\n\s*(?:Sent|Date): |>)",
    re.MULTILINE,
)
TAG = re.compile(r"<[^>]{0,2000}>")
ICS_METHOD = re.compile(r"^METHOD:\s*([A-Z-]+)", re.MULTILINE)
CT_METHOD = re.compile(r"method\s*=\s*\"?([a-z-]+)", re.IGNORECASE)
ICS_DT = re.compile(r"^(DTSTART|DTEND)[^:\n]*:(\d{8}T\d{6}Z?)", re.MULTILINE)
