"""Derive the cue lexicon (pipeline/data/cameo_lexicon.tsv) from the CAMEO verb dictionary.

Usage (from the repository root)::

    .venv/bin/python scripts/derive_lexicon.py \
        --cameo ../shared/corpora/cameo/CAMEO.2.0.txt --out pipeline/data/cameo_lexicon.tsv

Input: ``CAMEO.2.0.txt``, the PETRARCH-2 verb pattern dictionary (Open Event Data Alliance,
MIT licence). Its format: synonym sets (``&NAME`` then ``+WORD`` lines), then verb blocks
(``--- NAME [code] ---``) of synonymous verbs (``VERB {IRREGULAR FORMS} [code]``, a leading
``+`` marks a multi-word verb) followed by patterns (``- words * words [code]``, ``*`` is the
verb, ``{A B}`` a noun phrase, ``(PREP ...)`` a prepositional phrase, ``&SET`` a synonym set,
``$ + ^ %`` actor markers that we drop).

Output rows (tab separated, one header line)::

    kind  cue  context  code  root  polarity  block  source

* ``verb``     an inflected verb form (``cue``) of a block; ``code`` empty when the verb only
               codes through patterns (then ``polarity`` is ``none``).
* ``pattern``  a verb block plus the words (``context``) that must follow the verb within a
               short window; words before a ``*`` must precede it (the subject); the pattern's
               code overrides the verb's own code.
* ``noun``     a noun or noun phrase that CAMEO uses as the object of patterns whose codes agree
               in polarity (e.g. ``raid``, ``ceasefire``); derived, then reviewed.
* ``supplement`` hand-curated cue for news vocabulary CAMEO lacks; ``source`` gives the reason.

Review: ``DROP_LEMMAS``/``DROP_NOUNS`` remove cues that are ambiguous in news English (each with
a reason); ``SUPPLEMENT`` adds missing vocabulary. Both lists are part of this script so the
review is reproducible; the TSV is the script's output and is never edited by hand.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CAMEO = REPO.parent / "shared" / "corpora" / "cameo" / "CAMEO.2.0.txt"
DEFAULT_OUT = REPO / "pipeline" / "data" / "cameo_lexicon.tsv"
COUNTRIES_FILE = "Phoenix.Countries.actors.txt"
AGENTS_FILE = "Phoenix.agents.txt"
COLUMNS = ("kind", "cue", "context", "code", "root", "polarity", "block", "source")

# CAMEO root -> polarity used by the classifier (see LEXICON.md and the labelling guide).
ROOT_POLARITY = {
    "01": "neutral",
    "02": "neutral",
    "09": "neutral",
    "03": "deescalation",
    "04": "deescalation",
    "05": "deescalation",
    "08": "deescalation",
    "06": "cooperation",
    "07": "cooperation",
    "10": "escalation_weak",
    "11": "escalation_weak",
    "12": "escalation_weak",
    "13": "escalation",
    "14": "neutral",
    "15": "escalation",
    "16": "escalation",
    "17": "escalation",
    "18": "escalation",
    "19": "escalation",
    "20": "escalation",
}
# Sub-codes whose polarity differs from their root's.
CODE_POLARITY = {
    "111": "escalation",  # criticise/denounce: condemnations are escalation per the guide
    "1126": "escalation",  # protest notes, summoning envoys (guide)
    "112": "escalation",  # accuse: escalation per the labelling guide
    "051": "cooperation",  # praise, endorse: friendly words, not a move that lowers tension
    # arrests, deportations and repression are domestic justice and policing in news text,
    # which the guide scopes out (expulsions of diplomats are supplement cues)
    "173": "neutral",
    "174": "neutral",
    "175": "neutral",
    "1121": "escalation",
    "1122": "escalation",
    "1123": "escalation",
    "1124": "escalation",
    "1125": "escalation",
    "062": "escalation_weak",  # military cooperation: joint drills, often aimed at a rival
    "072": "escalation_weak",  # military aid to a party
}

# Review of the derived verbs: lemmas whose CAMEO code is wrong for most news uses, grouped by
# the reason. A dropped lemma keeps no code of its own but still anchors its block's patterns
# (e.g. "release" alone is dropped, "release ... prisoners" is kept).
DROP_GROUPS: dict[str, str] = {
    "generic verb of motion, cognition or communication; a move only with an object": """
        seek decide determine vote expect intend mean plan volunteer subscribe prepare ready
        train ensure signal approach arrive come join unite gather consider think weigh leave
        go depart travel learn hear introduce insert call deal associate organise organize
        admit reveal unveil affect impact influence advertise advertize back promote support
        recognise recognize respect value prize encourage favor favour prefer celebrate honor
        honour allow approve authorise authorize clear enable pass legislate verify fill abandon
        retire bow want debate aim face brave confront contact encounter interact detach
        disconnect relax tease undo go_through go_by satify abide bide order need press push
        claim swear challenge compete contend contest contrast counter counterbalance differ
        object table hold take pull catch grab best break bust match pit circle ring master
        overcome dominate overshadow overtake surmount struggle conflict force enforce bill
        remove reside inhabit infest render stock tender bid gear outfit furnish attire
        serve assign task add issue give provide supply accord head lead direct conduct
        command control manage handle steer govern rule administer regulate prescribe dictate
        enjoin connect relate attach bind chain blend combine unify coalesce fuse conflate
        constitute establish found institute enlist enroll accept amass cluster conglomerate
        conjoin constellate converge flock huddle join egress embark journey acquaint innovate
        elicit insert resettle expose profess confide confess divulge tempt exuberate exult
        rejoice triumph clap toast cheer enliven invigorate rouse spur exalt glorify esteem
        sanctify bless is_determined get_together go_away go_forth go_to leave_behind walk_out
        find_out give_notice send_word apprise apprize promulgate ask_for side_with concert
        conform correlate harmonise harmonize integrate orchestrate synchronise synchronize
        unionise unionize affirm reassert fail defy decline dismiss compensate brand
        counter cry grieve mourn weep wail whine sadden dishearten discourage despair suspect
        argue express shock stun stupefy offend outrage pique appall disgust scandalise
        scandalize debase degrade defile humble humiliate lecture drum_up pull_together garner
        muster marshal rally call_up disarray disorder disassociate best""",
    "economic, commercial or market sense dominates (trade is neutral per the guide)": """
        trade import purchase buy finance fund invest pay pay_for bankroll sponsor underwrite
        boost increase expand enlarge amplify augment compound deepen enhance heighten magnify
        redouble intensify step_up beef_up improve ease abate ameliorate better facilitate
        simplify expediate mitigate appease assuage bargain barter haggle exchange swap
        allocate allot apportion award bequeath bestow endow entrust grant lend loan benefit
        assist help aid merge link tie_in tax levy fine bill crack damage harm hurt impair mar
        spoil tarnish corrupt contaminate vitiate overturn revolutionise revolutionize
        appropriate extract pluck plunge crash surge slash""",
    "sports, weather or everyday sense dominates": """
        beat defeat storm stone ram hammer pound thump kick lash whip slap clobber pummel
        wrestle grapple duel tear rip crush smash shatter ruin overwhelm overpower blow hit
        fire shoot strike target engage die hang match score count total sum tally figure
        sweep mine dig rake comb scan skim check""",
    "domestic justice, policing or administration, not a move between states or armed actors": """
        arrest apprehend detain jail imprison incarcerate confine convict indict prosecute sue
        sentence charge implicate fault cage enclose contain restrict withhold bar block ban
        exclude segregate shun ostracise ostracize outlaw prohibit proscribe forbid disallow
        criminalise criminalize illegalise illegalize interdict censor veto penalize punish
        compel impel pressure impose inflict constrain curb moderate quell repress subdue
        suppress vote_down investigate probe inspect examine audit monitor study research
        explore analyse scrutinize unearth ascertain look_over glance_over deport evict exile
        banish oust boot_out kick_out steal loot pillage plunder despoil reave cane flog
        abuse mistreat bruise dishonor dishonour scuffle rampage nationalise nationalize
        legalise legalize decriminalise decriminalize declassify acquit exculpate exonerate
        vindicate absolve abstain ratify consent countenance empower permit tolerate
        disband rescind abort call_off annoy badger bother discomfit disconcert disquiet
        disturb harry hassle irk irritate pester plague rag torment upset vex agitate agonise
        agonize arouse enkindle bridle_at march demonstrate parade patrol""",
    "noun or name sense dominates ('United States', 'comments')": """
        state comment note report view watch see saw count figure total score address
        table spread scatter tally measure gauge sum""",
    "wrong polarity for the labelling guide": """
        restrain escalate summon resign remit regret lament distrust risk caution endanger""",
}
# Verbs whose noun sense dominates news text so much that they must not even anchor patterns
# ("arms", "allies", "press", "remarks"): no row at all is written for them.
NOUN_SENSE_NAMES = """ally arm guard press remark reason campaign tour dispute combat murder
    crusade shield safeguard protect defend ward tend comment note state report cable dissent
    battle rape arrest free charge wound communicate betray surround"""
NOUN_SENSE: dict[str, str] = {
    lemma: "noun sense dominates ('arms', 'allies', 'the press', 'remarks')"
    for lemma in NOUN_SENSE_NAMES.split()
}

DROP_LEMMAS: dict[str, str] = {
    lemma.replace("_", " "): reason
    for reason, names in DROP_GROUPS.items()
    for lemma in names.split()
}

# Derived object nouns are candidates only: a noun is kept when it names an event or act
# itself (reviewed by hand), not a target or place ("attack the airport" does not make
# "airport" a cue).
KEEP_NOUNS = {
    "aggression",
    "air raid",
    "airstrike",
    "airstrikes",
    "assault",
    "attack",
    "bombardment",
    "buildup",
    "counter-attack",
    "crackdown",
    "offensive",
    "pullout",
    "raids",
    "retaliation",
    "rocket attack",
    "peace deal",
    "olive branch",
    "pardon",
    "condemnation",
    "joint exercise",
    "joint exercises",
    "joint maneuvers",
    "consultation",
    "gunfire",
    "grenade",
    "incursion",
    "warning",
    "rebuff",
    "verbal attack",
    "bitter attack",
    "forgiveness",
    "reconciliation",
    "invasion",
    "massacre",
    "ceasefire",
    "truce",
    "sanctions",
    "ultimatum",
    "withdrawal",
    "talks",
    "negotiations",
    "dialogue",
    "mediation",
}

# Hand-curated supplement: (cue, context, code, reason). cue may use "|" for alternatives of
# inflected forms; context "" means a contiguous phrase.
SUPPLEMENT: list[tuple[str, str, str, str]] = [
    # escalation: use of force
    (
        "airstrike|airstrikes|air strike|air strikes|air raid|air raids",
        "",
        "195",
        "aerial attack noun, absent from CAMEO verb patterns",
    ),
    ("drone strike|drone strikes|drone attack|drone attacks", "", "195", "drone attacks"),
    (
        "missile strike|missile strikes|missile attack|missile attacks|rocket attack|rocket attacks",
        "",
        "195",
        "missile attacks",
    ),
    (
        "shelling|shelled|shells|artillery fire|mortar fire|bombardment|bombarded|bombing|bombings"
        "|bombed",
        "",
        "195",
        "shelling and bombardment",
    ),
    (
        "incursion|incursions|cross-border raid|cross-border raids",
        "",
        "192",
        "incursions across a border",
    ),
    (
        "airspace violation|airspace violations|violated airspace|violating airspace"
        "|violated its airspace|violated the airspace",
        "",
        "192",
        "airspace violations (guide)",
    ),
    ("offensive|counteroffensive|counter-offensive", "", "190", "military offensive"),
    ("clashes|clashed|firefight|gunfight|skirmish|skirmishes", "", "190", "armed clashes"),
    (
        "strikes|combat operations|combat operation|combat mission|combat missions|hostilities",
        "",
        "190",
        "military strikes and combat (labour strikes are listed as names below)",
    ),
    (
        "revolt|mutiny|mutinied|mutineers|coup|coup attempt|putsch",
        "",
        "180",
        "armed revolts and coups",
    ),
    (
        "killed|wounded|injured",
        "",
        "190",
        "casualty verbs in conflict reporting (also domestic; the model weighs them)",
    ),
    ("invasion|invaded|annexation|annexed|occupation", "", "192", "territorial seizure"),
    (
        "sabotage|sabotaged|cyberattack|cyberattacks|cyber attack|cyber attacks|hack|hacked",
        "",
        "160",
        "sabotage and cyber attacks (guide: sabotage)",
    ),
    (
        "shot down|shoots down|shooting down|downed|intercepted",
        "",
        "190",
        "shooting down aircraft and drones",
    ),
    (
        "launched|launch|launches|fired|fires",
        "missile|missiles|rocket|rockets|drone|drones"
        "|strike|strikes|attack|attacks|offensive|salvo",
        "190",
        "launching/firing weapons",
    ),
    (
        "ceasefire violation|ceasefire violations|violated the ceasefire|violated the truce"
        "|broke the ceasefire|broken the ceasefire|violating the ceasefire",
        "",
        "192",
        "ceasefires broken (guide: breakdowns)",
    ),
    # escalation: force posture
    (
        "deploy|deploys|deployed|deploying|deployment|deployments|redeploy|redeployed|redeploys"
        "|redeployment|redeploying",
        "",
        "154",
        "deployments (guide: military moves)",
    ),
    (
        "reinforce|reinforces|reinforced|reinforcing|reinforcements",
        "",
        "154",
        "reinforcements (guide)",
    ),
    (
        "mobilisation|mobilization|mobilise|mobilised|mobilises|mobilize|mobilized|mobilizes"
        "|mobilising|mobilizing|conscription|call-up",
        "",
        "154",
        "mobilisation (guide)",
    ),
    (
        "build-up|buildup|troop build-up|troop buildup|massing troops|massed troops|amassed"
        "|amassing",
        "",
        "154",
        "build-ups (guide)",
    ),
    (
        "military exercises|military drills|war games|live-fire|live fire|naval drills"
        "|joint drills|drills|exercises",
        "",
        "152",
        "exercises (guide: near a rival)",
    ),
    ("high alert|combat readiness|on alert|state of alert|combat-ready", "", "152", "alert status"),
    (
        "warships|warship|aircraft carrier|fighter jets|bombers|nuclear-capable",
        "",
        "150",
        "force posture vocabulary",
    ),
    (
        "nuclear test|missile test|test-fired|test-fires|test-firing|ballistic missile",
        "",
        "150",
        "weapons tests as posture",
    ),
    # escalation: coercion
    (
        "sanctions|sanctioned|sanctioning|embargo|embargoes|blockade|blockaded",
        "",
        "163",
        "coercive economic measures (guide); lifting is handled by the deescalation phrases",
    ),
    (
        "expelled|expels|expel|expelling|expulsion|expulsions",
        "diplomat|diplomats|ambassador|envoy|envoys|attache|consul|embassy staff",
        "1652",
        "expulsions of diplomats (guide)",
    ),
    ("persona non grata", "", "1652", "diplomatic expulsion"),
    (
        "recalled|recalls|recall|recalling",
        "ambassador|envoy",
        "161",
        "recalling an ambassador reduces relations",
    ),
    (
        "closed|closes|close|closing|shut|shuts|sealed|seals|seal|sealing|barred|bars|bar"
        "|barring|blocked|blocks|block|blocking",
        "border|borders|crossing"
        "|crossings|airspace|checkpoint|checkpoints|strait|embassy|consulate|mission"
        "|frontier|frontiers|border post|border posts|entry points|land border",
        "172",
        "closing or sealing a border (guide)",
    ),
    (
        "border closure|border closures|closure of the border|no-fly zone",
        "",
        "172",
        "closing a border (guide)",
    ),
    (
        "severed|severs|sever|cut|cuts|broke off|breaks off|broken off",
        "ties|relations|diplomatic",
        "161",
        "breaking relations (guide: downgrading)",
    ),
    (
        "downgrade|downgraded|downgrades|downgrading",
        "relations|ties|mission|embassy",
        "161",
        "downgrading relations (guide)",
    ),
    ("ultimatum|ultimatums", "", "139", "ultimatums (guide)"),
    (
        "protest note|note of protest|démarche|demarche|summoned|summons|summon|lodged a protest"
        "|formal protest|protested to|lodged a complaint",
        "",
        "1126",
        "protest notes and summoning envoys (guide)",
    ),
    (
        "warned|warns|warning|warnings|threatened|threatens|threat to|threatening",
        "",
        "130",
        "threats and warnings (guide)",
    ),
    (
        "retaliation|retaliate|retaliated|retaliatory|reprisal|reprisals|revenge",
        "",
        "138",
        "warnings of retaliation (guide)",
    ),
    (
        "accused|accuses|accusing|accusation|accusations|blamed|blames|blaming",
        "",
        "112",
        "accusations (guide: reported speech counts as the act)",
    ),
    ("condemned|condemns|condemning|denounced|denounces", "", "111", "verbal conflict"),
    ("provocation|provocations|provocative", "", "111", "verbal conflict"),
    (
        "escalation|escalate|escalated|escalates|escalating|tensions rose|tensions flared",
        "",
        "130",
        "explicit escalation vocabulary",
    ),
    (
        "seized|seizes|seize|seizure|captured|captures|hijacked",
        "ship|ships|tanker|tankers|vessel"
        "|vessels|village|town|city|territory|soldiers|sailors|boat|boats",
        "1711",
        "seizing vessels or ground",
    ),
    (
        "military drill|naval drill|live drill|live-fire drill|air drill|war game|military exercise"
        "|naval exercise",
        "",
        "152",
        "exercises, singular forms (guide)",
    ),
    (
        "advance|advances|advancing|advanced|push|pushed|pushing|offensive toward",
        "army|forces|troops|rebels|fighters|militants|soldiers|militia|tanks",
        "190",
        "military advances",
    ),
    (
        "close in on|closing in on|closed in on|closes in on|encircled|encircle|besieged|siege",
        "",
        "191",
        "encirclement and sieges",
    ),
    (
        "infiltrate|infiltrating|infiltrated|infiltration|espionage|spying|spies|spy ring",
        "",
        "160",
        "espionage and infiltration by a state",
    ),
    (
        "interference|interfere|interfering|meddling|meddle|meddled|tamper|tampering|influence"
        " campaign|disinformation campaign|hybrid attack|hybrid attacks|hybrid warfare"
        "|destabilise|destabilize|destabilising|destabilizing",
        "",
        "160",
        "interference and hybrid attacks (CAMEO codes 'interfere' as intervention, 070)",
    ),
    ("cautioned|cautions", "", "130", "cautioning a rival is a warning"),
    (
        "claim|claims|claimed|claiming|register|registered|registering|takeover|take over"
        "|took over|takes over|taking over",
        "land|territory|territories|islands|waters|state property|state land|hilltop|outpost",
        "192",
        "territorial claims and takeovers",
    ),
    (
        "nuclear threat|nuclear threats|threat to use|threatening to use|nuclear blackmail"
        "|nuclear sabre-rattling",
        "",
        "130",
        "nuclear threats",
    ),
    (
        "campaign to influence|effort to influence|influence operation|influence operations"
        "|election interference",
        "",
        "160",
        "influence operations against a state",
    ),
    (
        "settlement expansion|new settlements|settler attacks|settler violence|settlers attacked"
        "|settler attack|land grab|annexing|annex",
        "",
        "192",
        "seizing occupied land",
    ),
    (
        "shooting broke out|shooting breaks out|gunfire erupted|fighting erupted|fighting broke out"
        "|clashes erupted|clashes broke out|fighting flared|violence flared",
        "",
        "190",
        "fighting breaking out",
    ),
    (
        "arrive|arrived|arrives|arriving|landed|sent|sends|send|dispatched|dispatch",
        "troops"
        "|soldiers|marines|warships|warship|paratroopers|brigade|battalion|special forces"
        "|missile|missiles|bombers",
        "154",
        "forces sent or arriving (guide: deployments)",
    ),
    # breakdowns
    (
        "suspended|suspends|suspend|suspending|suspension",
        "talks|negotiations|dialogue|treaty|cooperation|participation|agreement|deal|flights",
        "164",
        "talks suspended (guide: breakdowns)",
    ),
    (
        "walked out|walk out|walks out|pulled out of|pulls out of|withdrew from|withdraws from"
        "|quit|quits|exited|exits|left",
        "treaty|accord|talks|agreement|deal|pact|negotiations",
        "161",
        "treaties left (guide: breakdowns)",
    ),
    (
        "talks collapsed|talks broke down|negotiations collapsed|negotiations broke down"
        "|ceasefire collapsed|truce collapsed|ceasefire broke down|truce broke down",
        "",
        "164",
        "breakdowns (guide)",
    ),
    # de-escalation: yield
    (
        "ceasefire|ceasefires|cease-fire|cease-fires|truce|truces|armistice",
        "",
        "0871",
        "ceasefires and truces (guide)",
    ),
    (
        "prisoner swap|prisoner swaps|prisoner exchange|prisoner exchanges|exchange of prisoners"
        "|swap of prisoners|exchanged prisoners|swapped prisoners",
        "",
        "0841",
        "prisoner exchanges (guide)",
    ),
    (
        "swap|swaps|swapped|exchange|exchanged|exchanges|handover|handed over|returned|repatriated",
        "prisoners|prisoner|soldiers|hostages|detainees|captives|bodies|pows|citizens",
        "0841",
        "exchanges and returns of detainees (guide)",
    ),
    (
        "amnesty|amnesties|pardon|pardoned|pardons|pardoning",
        "",
        "0841",
        "amnesties and pardons (guide)",
    ),
    (
        "released|releases|release|freed|frees|freeing",
        "prisoner|prisoners|hostage|hostages"
        "|detainee|detainees|captive|captives|journalist|sailors|soldiers|crew|activist"
        "|activists|civilians|fishermen|citizens",
        "0841",
        "releases (guide)",
    ),
    (
        "withdrawal|withdrawals|pullback|pull-back|pullout|pull-out|drawdown",
        "",
        "0874",
        "withdrawals (guide)",
    ),
    (
        "withdraw|withdraws|withdrew|withdrawn|withdrawing|pulled back|pulls back|pull back"
        "|pulled out|pulls out",
        "troops|forces|soldiers|units|army|military|equipment"
        "|tanks|warships|personnel|contingent|brigade|battalion",
        "0874",
        "withdrawing forces (guide)",
    ),
    (
        "demobilisation|demobilization|demobilise|demobilised|demobilize|demobilized"
        "|disarmament|disarm|disarmed|stand down|stood down|stands down",
        "",
        "0873",
        "demobilisation (guide)",
    ),
    (
        "de-escalation|de-escalate|de-escalated|de-escalating|deescalation|deescalate"
        "|defuse|defused|defusing|ease tensions|eased tensions|easing tensions|calm tensions"
        "|reduce tensions|reduced tensions|lower tensions|détente|detente|rapprochement"
        "|thaw|normalisation|normalization|normalise|normalize|normalised|normalized",
        "",
        "087",
        "explicit de-escalation vocabulary",
    ),
    (
        "lifted|lifts|lift|lifting|eased|eases|ease|easing|relaxed|relaxes|scrapped|removed",
        "sanctions|embargo|blockade|restrictions|ban|curfew",
        "085",
        "lifting sanctions (guide)",
    ),
    (
        "reopened|reopens|reopen|reopening|reopening of",
        "border|borders|crossing|crossings"
        "|embassy|consulate|airspace|checkpoint|checkpoints|corridor|route|routes",
        "081",
        "reopening borders or crossings (guide)",
    ),
    (
        "restored|restores|restore|restoring|restoration|resumed|resumes|resume|resuming"
        "|resumption|re-established|reestablished|normalised|normalized",
        "ties|relations|diplomatic|flights|dialogue|talks|contacts|cooperation",
        "0561",
        "restoring diplomatic ties (guide)",
    ),
    (
        "hotline|hotlines|confidence-building|confidence building|buffer zone|demilitarised zone"
        "|demilitarized zone|humanitarian corridor|humanitarian pause",
        "",
        "087",
        "confidence-building measures (guide)",
    ),
    (
        "peace talks|peace deal|peace agreement|peace accord|peace treaty|peace plan|peace process"
        "|peace summit|peace negotiations|peace conference|peace proposal|peace initiative"
        "|peace framework|peace roadmap",
        "",
        "036",
        "peace process vocabulary",
    ),
    (
        "talks|negotiations|negotiate|negotiated|negotiating|negotiators|dialogue|summit"
        "|mediation|mediate|mediated|mediating|mediator|mediators",
        "",
        "036",
        "talks, negotiations, dialogue, mediation (guide)",
    ),
    (
        "met|meets|meeting with|held talks|holds talks|hold talks|holding talks|phone call"
        "|telephone call|spoke by phone|video call",
        "",
        "036",
        "meetings between parties (guide: talks held)",
    ),
    ("visit|visited|visits|visiting|state visit|trip to", "", "042", "visits (guide)"),
    (
        "signed|signs|sign|signing|inked|clinched|reached|struck",
        "agreement|accord|deal|pact|treaty|memorandum|deals|agreements|accords",
        "057",
        "agreements signed",
    ),
    ("agreed|agrees|agree|agreeing", "", "057", "agreements (guide)"),
    (
        "not interested in|has no intention|have no intention|no plans to|has no plans"
        "|will not send|won't send|not seeking|does not seek|do not seek|ruled out|rules out"
        "|ruling out",
        "",
        "0874",
        "stated restraint (guide example)",
    ),
    (
        "restraint|show restraint|showed restraint|exercise restraint|pledged not"
        "|pledge not|promised not|vowed not",
        "",
        "087",
        "stated restraint (guide)",
    ),
    ("goodwill gesture|gesture of goodwill|olive branch", "", "057", "conciliatory gestures"),
    (
        "status quo|guiding principles|framework agreement|roadmap|road map|step back"
        "|stepped back|stepping back|back from the brink|constructive|productive talks"
        "|breakthrough",
        "",
        "087",
        "commitments and progress in talks",
    ),
    (
        "discussions|talk to|talks with|talk with|diplomatic push|diplomatic efforts"
        "|diplomatic effort|peace efforts|peace push|peace bid|shuttle diplomacy",
        "",
        "036",
        "talks and diplomacy (guide)",
    ),
    (
        "recognise|recognize|recognising|recognizing|recognised|recognized|recognition",
        "government|authorities|taliban|regime|insurgents|state|independence",
        "050",
        "recognising a government (diplomatic cooperation)",
    ),
    (
        "fixing relations|mend ties|mending ties|mended ties|repair ties|repairing relations"
        "|repair relations|improve relations|improving ties|improved relations|reset relations"
        "|thaw in relations",
        "",
        "050",
        "mending relations",
    ),
    (
        "end|ending|ended|ends|resolve|resolving|resolved|settle|settling|settled|defuse",
        "standoff"
        "|stand-off|row|feud|rift|blockade|hostilities|squabbles|dispute|disputes|crisis"
        "|crises",
        "087",
        "ending a standoff or dispute",
    ),
    ("reconciliation|reconcile|reconciled|rapprochement", "", "057", "reconciliation"),
    (
        "peacekeepers|peacekeeping|monitors|observers mission|monitoring mission"
        "|peacekeeping force|stabilisation force|stabilization force|international force"
        "|monitoring force",
        "",
        "086",
        "international involvement as a confidence-building step",
    ),
    # cooperation between partners: neutral per the guide, but worth telling apart
    (
        "bilateral ties|bilateral relations|bilateral cooperation|strengthen ties"
        "|strengthen relations|strengthen bilateral|strengthening bilateral|deepen ties"
        "|deepen cooperation|deepening ties|strategic partnership|partnership|cooperation agreement"
        "|economic cooperation|congratulated|congratulates|congratulate|reaffirmed|reaffirms"
        "|exchanged views|friendship|brotherly|investment|investments|trade ties",
        "",
        "060",
        "cooperation between partners (guide: neutral unless it lowers a confrontation)",
    ),
    # names that contain cue words: matched first and ignored (empty code)
    (
        "united states|united nations|united kingdom|united arab emirates|security council"
        "|state department|islamic state|defence ministry|defense ministry|interior ministry"
        "|foreign ministry|armed forces|peace prize|war crimes|world war|cold war|civil war"
        "|talk show|trade talks|trade deal|trade agreement|free trade|trade war|amnesty international"
        "|human rights watch|press conference|news conference|press release|on strike"
        "|general strike|strike action|hunger strike|went on strike|go on strike|labour strike"
        "|labor strike|strike by|fight against|fight for|war on terror|war on drugs|culture war"
        "|price war|trade war|war of words",
        "",
        "",
        "names and fixed phrases that contain cue words; they name no move",
    ),
    # speech and hedges are handled in pipeline/lexicon.py, not here
]


@dataclass(frozen=True)
class Row:
    kind: str
    cue: str
    context: str
    code: str
    block: str
    source: str
    actor_class: str = ""

    def fields(self) -> tuple[str, ...]:
        if self.kind == "actor":
            return (self.kind, self.cue, "", self.code, "", self.actor_class, "", self.source)
        root = self.code[:2] if self.code else ""
        return (
            self.kind,
            self.cue,
            self.context,
            self.code,
            root,
            polarity(self.code),
            self.block,
            self.source,
        )


def polarity(code: str) -> str:
    if not code:
        return "none"
    return CODE_POLARITY.get(code, ROOT_POLARITY.get(code[:2], "none"))


def norm_code(raw: str) -> str:
    """'[042:043]' -> '042', '[:173]' -> '173', '[---]' and '[110]---' -> '' / '110'."""
    inner = raw.strip().strip("[]").split("]")[0]
    parts = [p for p in inner.split(":") if p and p != "---"]
    code = parts[0] if parts else ""
    return code if re.fullmatch(r"\d{3,4}", code) else ""


def words(phrase: str) -> str:
    return " ".join(phrase.replace("_", " ").lower().split())


# ---------------------------------------------------------------- inflection
VOWELS = set("aeiou")


def _cvc(w: str) -> bool:
    return (
        len(w) >= 3 and w[-1] not in VOWELS | set("wxy") and w[-2] in VOWELS and w[-3] not in VOWELS
    )


def verb_forms(base: str) -> set[str]:
    """Regular English forms of a base verb (-s, -ed, -ing); both doubling variants for CVC."""
    w = base
    forms = {w}
    if re.search(r"(s|x|z|ch|sh|o)$", w):
        forms.add(w + "es")
    elif re.search(r"[^aeiou]y$", w):
        forms.add(w[:-1] + "ies")
    else:
        forms.add(w + "s")
    if w.endswith("e"):
        forms.add(w + "d")
        forms.add(
            (w[:-2] + "ying")
            if w.endswith("ie")
            else (w + "ing")
            if w.endswith(("ee", "ye", "oe"))
            else w[:-1] + "ing"
        )
    elif re.search(r"[^aeiou]y$", w):
        forms.add(w[:-1] + "ied")
        forms.add(w + "ing")
    else:
        forms.add(w + "ed")
        forms.add(w + "ing")
        if _cvc(w):
            forms.add(w + w[-1] + "ed")
            forms.add(w + w[-1] + "ing")
    return forms


def noun_forms(noun: str, plural: bool = True) -> set[str]:
    if not plural or noun.endswith("_"):
        return {words(noun.rstrip("_"))}
    n = words(noun)
    if re.search(r"[^aeiou]y$", n):
        return {n, n[:-1] + "ies"}
    if n.endswith(("ss", "sh", "ch", "x")):
        return {n, n + "es"}
    if n.endswith("s"):
        return {n}
    return {n, n + "s"}


# ---------------------------------------------------------------- parsing
@dataclass
class Block:
    name: str
    code: str
    line: int
    verbs: list[tuple[str, set[str], str, int]]  # lemma, forms, code, line
    # pre tokens, post tokens, code, line, verbs named in the pattern's comment
    patterns: list[tuple[list[str], list[str], str, int, set[str]]]


def parse(path: Path) -> tuple[dict[str, set[str]], list[Block]]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    synsets: dict[str, set[str]] = {}
    blocks: list[Block] = []
    section = "head"
    current_syn: str | None = None
    block: Block | None = None
    for lineno, raw in enumerate(lines, start=1):
        line = re.sub(r"<!--.*?-->", "", raw)
        line = re.split(r"[#;]", line, maxsplit=1)[0].rstrip()
        if "SYNONYM SETS" in raw:
            section = "syn"
            continue
        if "VERB PATTERNS" in raw:
            section = "verbs"
            continue
        if "TRANSFORMATIONS" in raw:
            break
        if not line.strip():
            current_syn = None
            continue
        if section == "syn":
            current_syn = _syn_line(line, synsets, current_syn)
        elif section == "verbs":
            if line.startswith("---"):
                m = re.match(r"---\s+(\S+)\s+(\[[^\]]*\])", line)
                if m:
                    block = Block(m.group(1), norm_code(m.group(2)), lineno, [], [])
                    blocks.append(block)
            elif block is not None and line.startswith("-"):
                pat = _pattern(line[1:], synsets, lineno)
                if pat:
                    comment = raw.split("#", 1)[1] if "#" in raw else ""
                    named = {words(w) for w in re.findall(r"\b[A-Z][A-Z_'-]+\b", comment)}
                    block.patterns.append((*pat, named))
            elif block is not None:
                verb = _verb_line(line, lineno)
                if verb:
                    block.verbs.append(verb)
            elif line.startswith("&"):
                current_syn = _syn_line(line, synsets, current_syn)
        elif section == "head" and line.startswith("&"):
            current_syn = _syn_line(line, synsets, current_syn)
    return synsets, blocks


def _syn_line(line: str, synsets: dict[str, set[str]], current: str | None) -> str | None:
    s = line.strip()
    if s.startswith("&"):
        synsets.setdefault(s, set())
        return s
    if s.startswith("+") and current:
        plural = not current.endswith("_")
        synsets[current] |= noun_forms(s[1:], plural)
    return current


def _verb_line(line: str, lineno: int) -> tuple[str, set[str], str, int] | None:
    m = re.match(r"\s*(\+?)([A-Z][A-Z_'/-]*)\s*(\{[^}]*\})?\s*(\[[^\]]*\])?", line)
    if not m:
        return None
    multi, head, irregular, code = m.groups()
    lemma = words(head)
    if irregular:
        given = {
            words(f.lstrip("+"))
            for f in re.split(r"[\s,]+", irregular.strip("{}"))
            if re.search(r"[A-Za-z]", f)
        }
        forms = {lemma} | given
        if len(given) < 3:  # partial list: add regular forms of the first word too
            forms |= _phrase_forms(lemma)
    else:
        forms = _phrase_forms(lemma)
    del multi
    return lemma, {f for f in forms if f}, norm_code(code or ""), lineno


def _phrase_forms(lemma: str) -> set[str]:
    first, _, rest = lemma.partition(" ")
    return {(f + (" " + rest if rest else "")) for f in verb_forms(first)}


def _pattern(
    body: str, synsets: dict[str, set[str]], lineno: int
) -> tuple[list[str], list[str], str, int] | None:
    m = re.search(r"\[[^\]]*\]", body)
    if not m or "*" not in body:
        return None
    code = norm_code(m.group(0))
    text = body[: m.start()]
    if "|" in text or "/" in text:  # disjunctions are unsupported in PETRARCH 2 as well
        return None
    pre, _, post = text.partition("*")
    return _tokens(pre, synsets), _tokens(post, synsets), code, lineno


def _tokens(text: str, synsets: dict[str, set[str]]) -> list[str]:
    """Pattern words, lowercased; a synset becomes '&NAME'; actor markers are dropped."""
    out = []
    for tok in re.sub(r"[{}()]", " ", text).split():
        if tok in {"$", "+", "^", "%", "*", "-"}:
            continue
        if tok.startswith("&"):
            out.append(tok if tok in synsets else "")
        else:
            out.append(words(tok))
    return out if all(out) else ["<undefined-synset>"]


# ---------------------------------------------------------------- derivation
def derive(path: Path) -> list[Row]:
    synsets, blocks = parse(path)
    src = path.name
    rows: list[Row] = []
    noun_codes: dict[str, Counter[str]] = defaultdict(Counter)
    noun_best: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    noun_lines: dict[str, int] = {}
    used_synsets: set[str] = set()
    for block in blocks:
        verb_pols = {
            polarity("" if lemma in DROP_LEMMAS else (vcode or block.code))
            for lemma, _, vcode, _ in block.verbs
        }
        kept_patterns = []
        lemmas = {lemma for lemma, _, _, _ in block.verbs}
        for pre, post, code, lineno, named in block.patterns:
            if "<undefined-synset>" in pre + post or not _contentful(pre + post):
                continue
            if code:  # a null-code pattern stays: it neutralises the verb in that context
                _collect_noun(post, code, lineno, noun_codes, noun_best, noun_lines)
            if verb_pols == {polarity(code)}:
                continue  # redundant: the verbs alone already give this polarity
            # A pattern was found with the verbs its comment names; synonyms in the block are
            # often looser ("restrict a meeting"), so it anchors only on those when named.
            only = sorted(named & lemmas)
            kept_patterns.append((pre, post, code, lineno, "|".join(only)))
        has_patterns = bool(kept_patterns)
        for lemma, forms, vcode, lineno in block.verbs:
            if lemma in NOUN_SENSE:
                continue
            code = "" if lemma in DROP_LEMMAS else (vcode or block.code)
            if not code and not has_patterns:
                continue
            for form in sorted(forms):
                rows.append(Row("verb", form, lemma, code, block.name, f"{src}:{lineno}"))
        for pre, post, code, lineno, only in kept_patterns:
            ctx = " ".join([*pre, "*", *post]) if pre else " ".join(post)
            used_synsets.update(t for t in pre + post if t.startswith("&"))
            rows.append(Row("pattern", only, ctx, code, block.name, f"{src}:{lineno}"))
    for name in sorted(used_synsets):
        for member in sorted(synsets[name]):
            rows.append(Row("synset", member, "", "", name, f"{src}: synonym set {name}"))
    rows += _nouns(noun_codes, noun_best, noun_lines, src)
    rows += _supplement()
    return _dedupe(rows)


def _contentful(tokens: list[str]) -> bool:
    """At least one token that is not a preposition or article."""
    return any(t.startswith("&") or t not in PREPOSITIONS for t in tokens)


def _collect_noun(
    post: list[str],
    code: str,
    lineno: int,
    noun_codes: dict[str, Counter[str]],
    noun_best: dict[str, dict[str, Counter[str]]],
    noun_lines: dict[str, int],
) -> None:
    """Count the pattern's object phrase as a candidate noun cue."""
    if not post or post[-1].startswith("&") or len(post) > 3:
        return
    phrase = " ".join(t for t in post if not t.startswith("&"))
    if not phrase or phrase.split()[0] in PREPOSITIONS:
        return
    noun_codes[phrase][polarity(code)] += 1
    noun_best[phrase][polarity(code)][code] += 1
    noun_lines.setdefault(phrase, lineno)


PREPOSITIONS = {
    "to",
    "for",
    "in",
    "of",
    "on",
    "with",
    "from",
    "against",
    "into",
    "by",
    "as",
    "over",
    "at",
    "under",
    "about",
    "after",
    "before",
    "out",
    "up",
    "down",
    "off",
    "away",
    "back",
    "that",
    "a",
    "the",
    "and",
}


def _nouns(
    noun_codes: dict[str, Counter[str]],
    noun_best: dict[str, dict[str, Counter[str]]],
    noun_lines: dict[str, int],
    src: str,
) -> list[Row]:
    """Object phrases whose patterns agree (>= 75 %, >= 2 patterns) on a non-neutral polarity."""
    rows = []
    for phrase, counts in sorted(noun_codes.items()):
        total = sum(counts.values())
        pol, n = counts.most_common(1)[0]
        if total < 2 or n / total < 0.75 or pol in {"none", "neutral", "cooperation"}:
            continue
        if phrase not in KEEP_NOUNS:
            continue
        code = noun_best[phrase][pol].most_common(1)[0][0]
        rows.append(
            Row(
                "noun",
                phrase,
                "",
                code,
                "",
                f"{src}:{noun_lines[phrase]} (objects of {total} patterns, {n} {pol})",
            )
        )
    return rows


def _supplement() -> list[Row]:
    rows = []
    for cue, context, code, reason in SUPPLEMENT:
        for alt in cue.split("|"):
            forms = {words(alt)}
            last = alt.split()[-1]
            if " " in alt and not context and not re.search(r"(s|ed|ing|[^a-z])$", last):
                forms.add(words(alt) + "s")  # plural of a noun phrase: "peace deals"
            for form in sorted(forms):
                rows.append(Row("supplement", form, context, code, "", f"supplement: {reason}"))
    return rows


def _dedupe(rows: list[Row]) -> list[Row]:
    seen = set()
    out = []
    for row in rows:
        key = (row.kind, row.cue, row.context, row.block, row.code, row.actor_class)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return sorted(out, key=lambda r: (r.kind, r.block, r.cue, r.context, r.code))


# ---------------------------------------------------------------- actors (Phoenix dictionaries)
# Agent code prefix -> actor class. A move between states or armed actors needs such actors;
# police, courts and criminals mark the domestic stories the labelling guide calls neutral.
AGENT_CLASS = {
    "MIL": "actor_military",
    "SPY": "actor_military",
    "REB": "actor_armed_group",
    "UAF": "actor_armed_group",
    "INS": "actor_armed_group",
    "GOV": "actor_state",
    "IGO": "actor_state",
    "COP": "actor_justice",
    "JUD": "actor_justice",
    "CRM": "actor_justice",
    "BUS": "actor_economy",
    "LAB": "actor_economy",
    "AGR": "actor_economy",
}
DEFAULT_AGENT_CLASS = "actor_civil"
# Hand-curated actors missing from the 2014 dictionaries (armed groups, blocs, institutions).
ACTOR_SUPPLEMENT: list[tuple[str, str, str]] = [
    # "name=CODE" gives the actor's identity (a country code or a group code used in
    # CONFLICT_DYADS); a bare name keeps the class code of the entry.
    (
        "hamas=HAMAS|hezbollah=HEZBOLLAH|houthi=HOUTHI|houthis=HOUTHI|ansar allah=HOUTHI"
        "|rsf=RSF|rapid support forces=RSF|m23=M23|taliban=AFG|isis=ISIS|isil=ISIS"
        "|islamic state=ISIS|al-shabaab=SHABAAB|al shabaab=SHABAAB|shabaab=SHABAAB|wagner=RUS"
        "|eln=COLREB|farc=COLREB|pkk=KURD|ypg=KURD|sdf=KURD|jnim=JNIM|boko haram=BOKO"
        "|al-qaeda|al qaeda|militia|militias|militiamen|militants|militant|rebels|rebel|jihadists"
        "|insurgents|gunmen|fighters|paramilitary|paramilitaries|armed group|armed groups",
        "REB",
        "armed non-state actors in current news",
    ),
    (
        "irgc=IRN|revolutionary guards=IRN|revolutionary guard=IRN|idf=ISR|pla=CHN|coast guard"
        "|navy|air force|army|troops|soldiers|forces|military|warships|warship|destroyer|frigate"
        "|brigade|battalion|commander|commanders|general|marines|drones|missiles|missile|drone"
        "|fighter jets|fighter jet|aircraft carrier|tanks|artillery|border guards|border guard",
        "MIL",
        "military actors and hardware",
    ),
    (
        "nato=NATO|united nations|un|european union=EUR|eu=EUR|african union|asean|osce|iaea"
        "|kremlin=RUS|pentagon=USA|white house=USA|foreign ministry|foreign minister"
        "|defence minister|defense minister|defence ministry|defense ministry|ambassador|envoy"
        "|envoys|diplomat|diplomats|president|prime minister|government|junta|putin=RUS"
        "|lavrov=RUS|peskov=RUS|zelensky=UKR|zelenskyy=UKR|sybiha=UKR|netanyahu=ISR"
        "|khamenei=IRN|araghchi=IRN|pezeshkian=IRN|xi=CHN|xi jinping=CHN|wang yi=CHN"
        "|kim jong un=PRK|kim jong-un=PRK|lukashenko=BLR|erdogan=TUR|modi=IND|sharif=PAK"
        "|munir=PAK|burhan=SDN|hemedti=RSF|tshisekedi=COD|kagame=RWA|abiy=ETH|isaias=ERI"
        "|maduro=VEN|pashinyan=ARM|aliyev=AZE|vucic=SRB|kurti=KSV|trump=USA|biden=USA|rubio=USA"
        "|witkoff=USA|hegseth=USA|macron=FRA|starmer=GBR|congo=COD|drc=COD|gaza=PSE"
        "|palestinian=PSE|palestinians=PSE|kyiv=UKR|moscow=RUS|tehran=IRN|beijing=CHN"
        "|taipei=TWN|pyongyang=PRK|seoul=KOR|washington=USA|kabul=AFG|islamabad=PAK"
        "|new delhi=IND|yerevan=ARM|baku=AZE|belgrade=SRB|pristina=KSV|minsk=BLR|caracas=VEN"
        "|georgetown=GUY|bangkok=THA|phnom penh=KHM|addis ababa=ETH|asmara=ERI|kinshasa=COD"
        "|kigali=RWA|khartoum=SDN|port sudan=SDN|mogadishu=SOM|ankara=TUR|athens=GRC"
        "|manila=PHL|tokyo=JPN|jerusalem=ISR|tel aviv=ISR|beirut=LBN|damascus=SYR|sanaa=HOUTHI",
        "GOV",
        "state leaders, capitals and institutions in current news",
    ),
    (
        "police|policeman|policemen|police officer|police officers|court|judge|prosecutor"
        "|prosecutors|trial|suspect|suspects|defendant|jury|convicted|sentenced|murder|murdered"
        "|robbery|stabbing|shooter|gunman|arrested|charged",
        "COP",
        "domestic policing and justice vocabulary",
    ),
    (
        "company|companies|firm|firms|shares|investors|market|markets|prices|inflation|economy"
        "|bank|banks|ceo|exports|imports|gdp|tariff|tariffs|stocks|profit|revenue|billion"
        "|merger|deal with",
        "BUS",
        "business and economy vocabulary",
    ),
    (
        "football|match|tournament|championship|olympics|olympic|world cup|league|coach|striker"
        "|goal|cup|team|season|film|festival|album|museum|storm|typhoon|hurricane|earthquake"
        "|flood|floods|wildfire|wildfires|heatwave|drought|election|elections|vote|voters|poll"
        "|polls|campaign|parliament|lawmakers|opposition party|candidate",
        "CVL",
        "sport, culture, disasters and elections vocabulary",
    ),
]

# Hand-curated (maintainers' list): rivalries between states, or a state and an armed group,
# that were active in 2014-2026. A sentence naming both sides of one is about a confrontation,
# so its talks, visits or strikes are moves; talks between other states are usually routine
# cooperation (neutral per the labelling guide).
CONFLICT_DYADS = """
RUS-UKR RUS-USA RUS-GBR RUS-POL RUS-LTU RUS-LVA RUS-EST RUS-FIN RUS-MDA RUS-GEO RUS-DEU
RUS-FRA RUS-JPN RUS-NATO RUS-EUR BLR-UKR BLR-POL BLR-LTU BLR-LVA ISR-IRN ISR-PSE ISR-HAMAS
ISR-HEZBOLLAH ISR-LBN ISR-SYR ISR-HOUTHI ISR-YEM USA-IRN USA-HOUTHI USA-YEM USA-VEN USA-CUB
USA-PRK USA-CHN USA-ISIS USA-COL SAU-HOUTHI SAU-YEM SAU-IRN ARE-SDN CHN-TWN CHN-PHL CHN-JPN
CHN-IND CHN-VNM CHN-AUS CHN-KOR PRK-KOR PRK-JPN JPN-KOR IND-PAK PAK-AFG ARM-AZE SRB-KSV
GRC-TUR CYP-TUR TUR-SYR TUR-KURD ETH-ERI ETH-SOM ETH-EGY SOM-SHABAAB KEN-SHABAAB SDN-RSF
SDN-SSD TCD-SDN COD-RWA COD-M23 RWA-M23 BDI-RWA VEN-GUY THA-KHM KGZ-TJK MAR-DZA MLI-DZA
NER-BEN NER-FRA MLI-FRA MLI-JNIM BFA-JNIM NGA-BOKO COL-COLREB IRQ-ISIS SYR-ISIS AFG-ISIS
IRN-ARE IRN-GBR UKR-HUN
"""


def derive_dyads() -> list[Row]:
    rows = []
    for pair in CONFLICT_DYADS.split():
        a, b = pair.split("-")
        rows.append(
            Row(
                "dyad",
                a,
                b,
                "",
                "",
                "supplement: maintainers' list of active rivalries (2014-2026)",
            )
        )
    return rows


def derive_actors(cameo_dir: Path) -> list[Row]:
    """Country names/demonyms/cities and agent nouns from the Phoenix actor dictionaries."""
    rows: list[Row] = []
    countries = cameo_dir / COUNTRIES_FILE
    agents = cameo_dir / AGENTS_FILE
    if countries.is_file():
        rows += _countries(countries)
    if agents.is_file():
        rows += _agents(agents)
    for cue, code, reason in ACTOR_SUPPLEMENT:
        cls = AGENT_CLASS.get(code, DEFAULT_AGENT_CLASS)
        for alt in cue.split("|"):
            name, _, ident = alt.partition("=")
            rows.append(
                Row("actor", words(name), "", ident or code, "", f"supplement: {reason}", cls)
            )
    return rows + derive_dyads()


def _countries(path: Path) -> list[Row]:
    """Country entries: a header name, '+' synonyms, then a code on the header line or on
    tab-indented date-restriction lines (``[UKR >911221]``). Person entries carry longer
    codes (``UKRGOV``) and are skipped: the 2014 names are mostly out of date."""
    rows: list[Row] = []
    names: list[tuple[str, int]] = []
    codes: list[str] = []

    def flush() -> None:
        country = [c for c in codes if len(c) == 3]
        if names and country:
            rows.extend(
                _actor_row(n, country[-1], "actor_country", path.name, ln) for n, ln in names
            )
        names.clear()
        codes.clear()

    for lineno, raw in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
    ):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if raw.startswith(("\t", " ")):
            codes += re.findall(r"\[([A-Z]+)[^\]]*\]", line)
        elif line.startswith("+"):
            names.append((line[1:].strip(), lineno))
        else:
            flush()
            head = re.match(r"^([A-Z][A-Z_'.-]*)\s*(?:\[([A-Z]+)\])?", line)
            if head:
                names.append((head.group(1), lineno))
                if head.group(2):
                    codes.append(head.group(2))
    flush()
    return [r for r in rows if r.cue]


def _actor_row(phrase: str, code: str, cls: str, src: str, lineno: int) -> Row:
    cue = words(phrase.rstrip("_"))
    if len(cue) < 3 or not re.fullmatch(r"[a-z][a-z' .-]*", cue):
        cue = ""
    return Row("actor", cue, "", code, "", f"{src}:{lineno}", cls)


SUBSTITUTIONS = {
    "!PERSON!": ["man", "men", "woman", "women", "person"],
    "!MINIST!": ["minister", "ministers", "ministry", "ministries"],
}


def _agents(path: Path) -> list[Row]:
    rows = []
    for lineno, raw in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
    ):
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"^(.+?)\s*(\{[^}]*\})?\s*\[~?([A-Z]+)~?\]", line)
        if not m or "=" in line:
            continue
        phrase, plurals, code = m.groups()
        cls = AGENT_CLASS.get(code[:3], DEFAULT_AGENT_CLASS)
        for form in _agent_forms(phrase.strip(), plurals):
            rows.append(Row("actor", form, "", code, "", f"{path.name}:{lineno}", cls))
    return [r for r in rows if r.cue and re.fullmatch(r"[a-z][a-z' .-]*", r.cue)]


def _agent_forms(phrase: str, plurals: str | None) -> set[str]:
    variants = [phrase]
    for marker, subs in SUBSTITUTIONS.items():
        variants = [
            v.replace(marker, " " + s + " ") if marker in v else v
            for v in variants
            for s in (subs if marker in v else [""])
        ]
    forms: set[str] = set()
    for v in variants:
        base = words(v.replace("_", " "))
        forms.add(base)
        if plurals is None:
            forms |= noun_forms(base)
        else:
            forms |= {words(p) for p in plurals.strip("{}").split() if p}
    return {f for f in forms if f}


def write(rows: list[Row], out: Path) -> None:
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("\t".join(COLUMNS) + "\n")
        for row in rows:
            fh.write("\t".join(row.fields()) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameo", type=Path, default=DEFAULT_CAMEO)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if not args.cameo.is_file():
        print(f"error: {args.cameo} not found; pass --cameo PATH", file=sys.stderr)
        return 2
    rows = _dedupe(derive(args.cameo) + derive_actors(args.cameo.parent))
    write(rows, args.out)
    kinds = Counter(r.kind for r in rows)
    print(f"wrote {len(rows)} rows to {args.out}: {dict(sorted(kinds.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
