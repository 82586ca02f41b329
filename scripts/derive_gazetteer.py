#!/usr/bin/env python3
"""Derive pipeline/data/gazetteer.tsv from the Phoenix country-actor dictionary.

Usage (from the repo root; the word list comes from Debian's `wamerican` package):

    python scripts/derive_gazetteer.py \\
        --actors ../shared/corpora/cameo/Phoenix.Countries.actors.txt \\
        --words /usr/share/dict/american-english \\
        --out pipeline/data/gazetteer.tsv [--report dropped.tsv]

Output columns: phrase, country_code, country_name, kind. Kinds: name, demonym, capital, alias
(other names in a country's entry: variant spellings, cities, regions), territory, leader,
person, institution, and block (a phrase that names no country but contains a name that
would otherwise match, e.g. "New Mexico"; its code and name are empty). See
pipeline/data/GAZETTEER.md for the rules and their reasons.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

# --------------------------------------------------------------------------- hand tables


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _phrases(text: str) -> list[str]:
    """Semicolon-separated phrases; line breaks inside a phrase count as spaces."""
    return [" ".join(p.split()) for p in text.split(";") if p.strip()]


# CODE|English name|demonyms and nationality nouns|capital (and its spellings).
# Names and demonyms here are kept even when they are also lower-case English words
# ("Polish", "Turkey", "China"): matching is case-sensitive, and these are the main signal.
COUNTRIES = """
AFG|Afghanistan|Afghan;Afghans;Afghanistani|Kabul
ALB|Albania|Albanian;Albanians|Tirana;Tiranë
DZA|Algeria|Algerian;Algerians|Algiers
AND|Andorra|Andorran;Andorrans|Andorra la Vella
AGO|Angola|Angolan;Angolans|Luanda
AIA|Anguilla|Anguillan;Anguillans|
ATG|Antigua and Barbuda|Antiguan;Antiguans;Barbudan|
ARG|Argentina|Argentine;Argentinian;Argentines;Argentinians|Buenos Aires
ARM|Armenia|Armenian;Armenians|Yerevan
ABW|Aruba|Aruban;Arubans|Oranjestad
AUS|Australia|Australian;Australians|Canberra
AUT|Austria|Austrian;Austrians|Vienna
AZE|Azerbaijan|Azerbaijani;Azerbaijanis;Azeri;Azeris|Baku
BHS|Bahamas|Bahamian;Bahamians|Nassau
BHR|Bahrain|Bahraini;Bahrainis|Manama
BGD|Bangladesh|Bangladeshi;Bangladeshis|Dhaka
BRB|Barbados|Barbadian;Barbadians;Bajan|Bridgetown
BLR|Belarus|Belarusian;Belarusians;Belarussian;Byelorussian;Belorussian|Minsk
BEL|Belgium|Belgian;Belgians|Brussels
BLZ|Belize|Belizean;Belizeans|Belmopan
BEN|Benin|Beninese|Porto-Novo;Cotonou
BMU|Bermuda|Bermudian;Bermudians|
BTN|Bhutan|Bhutanese|Thimphu
BOL|Bolivia|Bolivian;Bolivians|Sucre;La Paz
BIH|Bosnia and Herzegovina|Bosnian;Bosnians;Herzegovinian|Sarajevo
BWA|Botswana|Motswana;Batswana|Gaborone
BRA|Brazil|Brazilian;Brazilians|Brasilia;Brasília
BRN|Brunei|Bruneian;Bruneians|Bandar Seri Begawan
BGR|Bulgaria|Bulgarian;Bulgarians|Sofia
BFA|Burkina Faso|Burkinabe;Burkinabè|Ouagadougou
BDI|Burundi|Burundian;Burundians|Gitega;Bujumbura
KHM|Cambodia|Cambodian;Cambodians;Khmer|Phnom Penh
CMR|Cameroon|Cameroonian;Cameroonians|Yaounde;Yaoundé
CAN|Canada|Canadian;Canadians|Ottawa
CPV|Cape Verde|Cape Verdean;Cape Verdeans;Cabo Verdean|Praia
CYM|Cayman Islands|Caymanian;Caymanians|
CAF|Central African Republic|Centrafrican|Bangui
TCD|Chad|Chadian;Chadians|N'Djamena;Ndjamena
CHL|Chile|Chilean;Chileans|Santiago
CHN|China|Chinese|Beijing;Peking
COL|Colombia|Colombian;Colombians|Bogota;Bogotá
COM|Comoros|Comorian;Comorians|Moroni
COG|Republic of the Congo|Congolese Republic|Brazzaville
COK|Cook Islands|Cook Islander;Cook Islanders|Avarua
CRI|Costa Rica|Costa Rican;Costa Ricans|
CIV|Ivory Coast|Ivorian;Ivorians|Yamoussoukro;Abidjan
HRV|Croatia|Croatian;Croatians;Croat;Croats|Zagreb
CUB|Cuba|Cuban;Cubans|Havana
CYP|Cyprus|Cypriot;Cypriots|Nicosia
CZE|Czech Republic|Czech;Czechs|Prague
COD|Democratic Republic of the Congo|Congolese|Kinshasa
DNK|Denmark|Danish;Dane;Danes|Copenhagen
DJI|Djibouti|Djiboutian;Djiboutians|
DMA|Dominica||Roseau
DOM|Dominican Republic|Dominican;Dominicans|Santo Domingo
ECU|Ecuador|Ecuadorian;Ecuadorean;Ecuadorians|Quito
EGY|Egypt|Egyptian;Egyptians|Cairo
SLV|El Salvador|Salvadoran;Salvadorean;Salvadorans|San Salvador
GNQ|Equatorial Guinea|Equatorial Guinean;Equatoguinean|Malabo
ERI|Eritrea|Eritrean;Eritreans|Asmara
EST|Estonia|Estonian;Estonians|Tallinn
ETH|Ethiopia|Ethiopian;Ethiopians|Addis Ababa
KNA|Saint Kitts and Nevis|Kittitian;Nevisian|Basseterre
FJI|Fiji|Fijian;Fijians|Suva
FIN|Finland|Finnish;Finns|Helsinki
FRA|France|French;Frenchman;Frenchmen;Frenchwoman|Paris
GAB|Gabon|Gabonese|Libreville
GMB|Gambia|Gambian;Gambians|Banjul
GEO|Georgia|Georgian;Georgians|Tbilisi
DEU|Germany|German;Germans|Berlin
GHA|Ghana|Ghanaian;Ghanaians|Accra
GBR|United Kingdom|British;Briton;Britons;Brit;Brits|London
GRC|Greece|Greek;Greeks;Hellenic|Athens
GRD|Grenada|Grenadian;Grenadians|
GTM|Guatemala|Guatemalan;Guatemalans|Guatemala City
GGY|Guernsey|Guernseyman|St Peter Port
GIN|Guinea|Guinean;Guineans|Conakry
GNB|Guinea-Bissau|Bissau-Guinean;Bissau-Guineans|Bissau
GUY|Guyana|Guyanese|
HTI|Haiti|Haitian;Haitians|Port-au-Prince
HND|Honduras|Honduran;Hondurans|Tegucigalpa
HKG|Hong Kong|Hongkonger;Hongkongers|
HUN|Hungary|Hungarian;Hungarians;Magyar|Budapest
ISL|Iceland|Icelandic;Icelander;Icelanders|Reykjavik;Reykjavík
IND|India|Indian;Indians|New Delhi
IDN|Indonesia|Indonesian;Indonesians|Jakarta
IRN|Iran|Iranian;Iranians|Tehran;Teheran
IRQ|Iraq|Iraqi;Iraqis|Baghdad
IRL|Ireland|Irish;Irishman;Irishmen|Dublin
ISR|Israel|Israeli;Israelis|Jerusalem
ITA|Italy|Italian;Italians|Rome
JAM|Jamaica|Jamaican;Jamaicans|Kingston
JPN|Japan|Japanese|Tokyo
JOR|Jordan|Jordanian;Jordanians|Amman
KAZ|Kazakhstan|Kazakh;Kazakhs;Kazakhstani;Kazakhstanis|Astana
KEN|Kenya|Kenyan;Kenyans|Nairobi
KIR|Kiribati|I-Kiribati|Tarawa
KGZ|Kyrgyzstan|Kyrgyz;Kirghiz;Kyrgyzstani|Bishkek
KWT|Kuwait|Kuwaiti;Kuwaitis|Kuwait City
LAO|Laos|Lao;Laotian;Laotians|Vientiane
LVA|Latvia|Latvian;Latvians|Riga
LBN|Lebanon|Lebanese|Beirut
LSO|Lesotho|Basotho;Mosotho|Maseru
LBR|Liberia|Liberian;Liberians|Monrovia
LBY|Libya|Libyan;Libyans|
LIE|Liechtenstein|Liechtensteiner;Liechtensteiners|Vaduz
LTU|Lithuania|Lithuanian;Lithuanians|Vilnius
LUX|Luxembourg|Luxembourgish;Luxembourger;Luxembourgers|
MKD|North Macedonia|Macedonian;Macedonians|Skopje
MDG|Madagascar|Malagasy|Antananarivo
MWI|Malawi|Malawian;Malawians|Lilongwe
MYS|Malaysia|Malaysian;Malaysians|Kuala Lumpur;Putrajaya
MDV|Maldives|Maldivian;Maldivians|
MLI|Mali|Malian;Malians|Bamako
MLT|Malta|Maltese|Valletta
MHL|Marshall Islands|Marshallese|Majuro
MRT|Mauritania|Mauritanian;Mauritanians|Nouakchott
MUS|Mauritius|Mauritian;Mauritians|Port Louis
MEX|Mexico|Mexican;Mexicans|Mexico City
FSM|Micronesia|Micronesian;Micronesians|Palikir
MDA|Moldova|Moldovan;Moldovans|Chisinau;Chişinău;Chișinău
MCO|Monaco|Monegasque;Monégasque|
MNG|Mongolia|Mongolian;Mongolians|Ulaanbaatar;Ulan Bator
MNE|Montenegro|Montenegrin;Montenegrins|Podgorica
MAR|Morocco|Moroccan;Moroccans|Rabat
MOZ|Mozambique|Mozambican;Mozambicans|Maputo
MMR|Myanmar|Burmese|Naypyidaw;Naypyitaw;Nay Pyi Taw;Yangon;Rangoon
NAM|Namibia|Namibian;Namibians|Windhoek
NRU|Nauru|Nauruan;Nauruans|Yaren
NPL|Nepal|Nepalese;Nepali;Nepalis|Kathmandu
NLD|Netherlands|Dutch;Dutchman;Dutchmen|Amsterdam;The Hague
NZL|New Zealand|New Zealander;New Zealanders|Wellington
NIC|Nicaragua|Nicaraguan;Nicaraguans|Managua
NER|Niger|Nigerien;Nigeriens|Niamey
NGA|Nigeria|Nigerian;Nigerians|Abuja
PRK|North Korea|North Korean;North Koreans|Pyongyang
XKX|Kosovo|Kosovar;Kosovars;Kosovan|Pristina;Prishtina
NOR|Norway|Norwegian;Norwegians|Oslo
OMN|Oman|Omani;Omanis|Muscat
PAK|Pakistan|Pakistani;Pakistanis|Islamabad
PLW|Palau|Palauan;Palauans|Ngerulmud
PSE|Palestine|Palestinian;Palestinians|Ramallah
PAN|Panama|Panamanian;Panamanians|Panama City
PNG|Papua New Guinea|Papua New Guinean;Papua New Guineans|Port Moresby
PRY|Paraguay|Paraguayan;Paraguayans|Asuncion;Asunción
PER|Peru|Peruvian;Peruvians|Lima
PHL|Philippines|Filipino;Filipinos;Filipina;Philippine|Manila
POL|Poland|Polish;Poles|Warsaw
PRT|Portugal|Portuguese|Lisbon
QAT|Qatar|Qatari;Qataris|Doha
ZAF|South Africa|South African;South Africans|Pretoria;Cape Town
ROU|Romania|Romanian;Romanians|Bucharest
RUS|Russia|Russian;Russians|Moscow
RWA|Rwanda|Rwandan;Rwandans|Kigali
LCA|Saint Lucia|Saint Lucian;St. Lucian|Castries
VCT|Saint Vincent and the Grenadines|Vincentian;Vincentians|Kingstown
WSM|Samoa|Samoan;Samoans|Apia
SMR|San Marino|Sammarinese|
STP|Sao Tome and Principe|Santomean;São Toméan|São Tomé;Sao Tome
SAU|Saudi Arabia|Saudi;Saudis|Riyadh
SEN|Senegal|Senegalese|Dakar
SRB|Serbia|Serbian;Serbians;Serb;Serbs|Belgrade
SYC|Seychelles|Seychellois|
SLE|Sierra Leone|Sierra Leonean;Sierra Leoneans|Freetown
SGP|Singapore|Singaporean;Singaporeans|
SVN|Slovenia|Slovenian;Slovenians;Slovene;Slovenes|Ljubljana
SVK|Slovakia|Slovak;Slovaks;Slovakian|Bratislava
SLB|Solomon Islands|Solomon Islander;Solomon Islanders|Honiara
SOM|Somalia|Somali;Somalis|Mogadishu
KOR|South Korea|South Korean;South Koreans|Seoul
SSD|South Sudan|South Sudanese|Juba
ESP|Spain|Spanish;Spaniard;Spaniards|Madrid
LKA|Sri Lanka|Sri Lankan;Sri Lankans|Colombo;Sri Jayawardenepura Kotte
SDN|Sudan|Sudanese|Khartoum
SUR|Suriname|Surinamese|Paramaribo
SWZ|Eswatini|Swazi;Swazis|Mbabane
SWE|Sweden|Swedish;Swede;Swedes|Stockholm
CHE|Switzerland|Swiss|Bern;Berne
SYR|Syria|Syrian;Syrians|Damascus
TWN|Taiwan|Taiwanese|Taipei
TJK|Tajikistan|Tajik;Tajiks;Tajikistani|Dushanbe
THA|Thailand|Thai;Thais|Bangkok
TLS|Timor-Leste|Timorese|Dili
TGO|Togo|Togolese|Lome;Lomé
TON|Tonga|Tongan;Tongans|Nuku'alofa
TTO|Trinidad and Tobago|Trinidadian;Trinidadians;Tobagonian|Port of Spain
TUN|Tunisia|Tunisian;Tunisians|Tunis
TUR|Turkey|Turkish;Turk;Turks|Ankara
TKM|Turkmenistan|Turkmen|Ashgabat
TUV|Tuvalu|Tuvaluan;Tuvaluans|Funafuti
UGA|Uganda|Ugandan;Ugandans|Kampala
UKR|Ukraine|Ukrainian;Ukrainians|Kyiv;Kiev
ARE|United Arab Emirates|Emirati;Emiratis|Abu Dhabi
URY|Uruguay|Uruguayan;Uruguayans|Montevideo
USA|United States|American;Americans|Washington
TZA|Tanzania|Tanzanian;Tanzanians|Dodoma;Dar es Salaam
UZB|Uzbekistan|Uzbek;Uzbeks;Uzbekistani|Tashkent
VUT|Vanuatu|Ni-Vanuatu|Port Vila
VAT|Vatican City||
VEN|Venezuela|Venezuelan;Venezuelans|Caracas
VNM|Vietnam|Vietnamese|Hanoi
YEM|Yemen|Yemeni;Yemenis|Sanaa;Sana'a
ZMB|Zambia|Zambian;Zambians|Lusaka
ZWE|Zimbabwe|Zimbabwean;Zimbabweans|Harare
"""

# More names per country (official and current forms the 2014 file lacks).
EXTRA_NAMES = """
ARE|UAE;Emirates
BIH|Bosnia;Bosnia-Herzegovina
CHN|People's Republic of China;PRC;Mainland China
CIV|Côte d'Ivoire;Cote d'Ivoire
COD|DR Congo;DRC;Congo;Congo-Kinshasa;Democratic Republic of Congo
COG|Republic of Congo;Congo Republic;Congo-Brazzaville
CPV|Cabo Verde
CZE|Czechia
GBR|UK;U.K.;Britain;Great Britain;England;Scotland;Wales;Northern Ireland
GNB|Guinea Bissau
KOR|Republic of Korea;ROK
MKD|Macedonia;FYROM
MMR|Burma
NLD|Holland
PRK|DPRK;Democratic People's Republic of Korea
PSE|Palestinian territories;State of Palestine;Gaza Strip;West Bank
RUS|Russian Federation
SWZ|Swaziland
TLS|East Timor
TUR|Türkiye;Turkiye
TZA|United Republic of Tanzania
USA|US;U.S.;USA;U.S.A.;United States of America;America
VAT|Vatican;Holy See
VNM|Viet Nam
"""

# Places the monitor's region needs that the 2014 file lacks or files elsewhere.
EXTRA_PLACES = """
BLR|Brest Region;Grodno;Hrodna;Vitebsk;Vitsebsk;Mogilev;Mahilyow;Babruysk;Bobruisk
UKR|Kharkiv;Zaporizhzhia;Dnipro;Mykolaiv;Kherson;Lviv;Mariupol;Bakhmut;Avdiivka;Chernihiv;Sumy
UKR|Crimean;Donbas
RUS|Kaliningrad;Belgorod;Bryansk;Rostov-on-Don;Chechnya;Dagestan;Siberia
POL|Gdansk;Gdańsk;Kraków;Łódź;Wrocław;Białystok;Bialystok;Lublin;Rzeszow;Rzeszów;Szczecin;Poznan
POL|Poznań
CHN|Shanghai;Xinjiang;Tibet;Guangzhou;Shenzhen;Wuhan;Chongqing
GEO|Abkhazia;South Ossetia;Batumi
MDA|Transnistria;Tiraspol
AZE|Nagorno-Karabakh
GBR|Isle of Man
ESP|Canary Islands
"""

LEADERS = """
BLR|Alexander Lukashenko;Aleksandr Lukashenko;Alyaksandr Lukashenka;Lukashenko;Lukashenka
BLR|Sviatlana Tsikhanouskaya;Tsikhanouskaya;Maksim Ryzhenkov;Ryzhenkov;Viktor Khrenin
BLR|Roman Golovchenko;Dmitry Krutoy
UKR|Volodymyr Zelensky;Volodymyr Zelenskyy;Volodymyr Zelenskiy;Zelensky;Zelenskyy;Zelenskiy
UKR|Viktor Yanukovych;Yanukovych;Dmytro Kuleba;Kuleba;Andrii Sybiha;Sybiha;Denys Shmyhal;Shmyhal
UKR|Yulia Svyrydenko;Rustem Umerov;Umerov;Oleksii Reznikov;Valerii Zaluzhnyi;Valery Zaluzhny
UKR|Zaluzhnyi;Oleksandr Syrskyi;Syrskyi;Andriy Yermak;Andrii Yermak;Yermak;Kyrylo Budanov;Budanov
UKR|Poroshenko
RUS|Vladimir Putin;Putin;Sergei Lavrov;Sergey Lavrov;Lavrov;Mikhail Mishustin;Mishustin
RUS|Sergei Shoigu;Sergey Shoigu;Shoigu;Andrei Belousov;Andrey Belousov;Belousov;Dmitry Peskov
RUS|Peskov;Maria Zakharova;Zakharova;Valery Gerasimov;Gerasimov;Alexei Navalny;Navalny
RUS|Yevgeny Prigozhin;Prigozhin;Ramzan Kadyrov;Kadyrov;Nikolai Patrushev;Patrushev
RUS|Sergei Naryshkin;Naryshkin;Medvedev
POL|Andrzej Duda;Duda;Tusk;Karol Nawrocki;Nawrocki;Radoslaw Sikorski;Radosław Sikorski;Sikorski
POL|Mateusz Morawiecki;Morawiecki;Jaroslaw Kaczynski;Jarosław Kaczyński;Kaczynski;Kaczyński
POL|Wladyslaw Kosiniak-Kamysz;Władysław Kosiniak-Kamysz
CHN|Xi Jinping;Xi;Li Qiang;Wang Yi;Li Keqiang;Dong Jun;Qin Gang;Han Zheng;Zhao Leji
USA|Joe Biden;Biden;Donald Trump;Trump;Kamala Harris;Antony Blinken;Blinken;Marco Rubio;Rubio
USA|Pete Hegseth;Hegseth;Lloyd Austin;JD Vance;J.D. Vance;Jake Sullivan
FRA|Emmanuel Macron;Macron
DEU|Olaf Scholz;Scholz;Friedrich Merz;Merz;Annalena Baerbock;Baerbock;Angela Merkel;Merkel
GBR|Keir Starmer;Starmer;Rishi Sunak;Sunak;Boris Johnson
TUR|Recep Tayyip Erdogan;Recep Tayyip Erdoğan;Erdogan;Erdoğan;Hakan Fidan
ISR|Benjamin Netanyahu;Netanyahu;Israel Katz
IRN|Ali Khamenei;Khamenei;Masoud Pezeshkian;Pezeshkian;Ebrahim Raisi;Raisi;Abbas Araghchi;Araghchi
HUN|Viktor Orban;Viktor Orbán;Orban;Orbán
SVK|Robert Fico;Fico
ITA|Giorgia Meloni;Meloni
MDA|Maia Sandu;Sandu
GEO|Irakli Kobakhidze;Kobakhidze;Bidzina Ivanishvili;Ivanishvili;Salome Zourabichvili
GEO|Zourabichvili;Mikheil Kavelashvili
ARM|Nikol Pashinyan;Pashinyan
AZE|Ilham Aliyev;Aliyev
KAZ|Kassym-Jomart Tokayev;Tokayev
LTU|Gitanas Nauseda;Gitanas Nausėda;Nauseda;Nausėda
FIN|Alexander Stubb;Stubb
IND|Narendra Modi;Modi
PRK|Kim Jong Un;Kim Jong-un;Kim Jong Il;Kim Jong-il
KOR|Yoon Suk Yeol;Yoon Suk-yeol;Lee Jae-myung
SYR|Bashar al-Assad;Assad;Ahmed al-Sharaa
AFG|Abdullah Abdullah;Hamid Karzai;Karzai
SSD|Salva Kiir;Riek Machar
SAU|Mohammed bin Salman
VEN|Nicolas Maduro;Nicolás Maduro;Maduro
"""

INSTITUTIONS = """
RUS|Kremlin;State Duma;Duma;Wagner Group;Rosatom;Gazprom;Roscosmos;GRU
USA|White House;Pentagon;State Department;Capitol Hill
POL|Sejm
UKR|Verkhovna Rada
CHN|Zhongnanhai;Chinese Communist Party;CCP
DEU|Bundestag;Bundeswehr
GBR|Downing Street;Whitehall
ISR|Knesset;Mossad;IDF
IRN|Revolutionary Guards;Revolutionary Guard;IRGC;Guardian Council;Expediency Council
IRN|Assembly of Experts
RUS|Federation Council;Federal Security Service
USA|Central Intelligence Agency;Federal Bureau of Investigation;Federal Reserve;CIA;FBI
PAK|Inter-Services Intelligence;ISI
"""

# Phrases that contain a country name but name no country: matched (longest match wins) and
# discarded, so the shorter name inside them does not fire.
BLOCKS = _phrases(
    """
New Mexico; New Jersey; New England; New South Wales; Guinea pig; Guinea pigs; Indian Ocean;
American Indian; American Indians; West Indies; West Indian; East Indies; Latin America; Latin
American; Latin Americans; South America; South American; South Americans; North America; North
American; North Americans; Central America; Central American; Central Americans; Central Africa;
Turks and Caicos; Persian Gulf; Paris Agreement; Paris Climate Agreement; Indian Wells
"""
)

# Lexical prefixes before a hyphen ("Sino-Russian", "Russo-Ukrainian"); matched only there.
PREFIXES = {"Sino-": "CHN", "Russo-": "RUS"}

# Phrases from the file dropped for precision (see GAZETTEER.md for the reasons).
DROP = _phrases(
    """
Victoria; Hamilton; Georgetown; San Jose; Brest; Tripoli; Doris; Tara; Perth; Nixon; Lincoln;
Florence; Sydney; Charlotte; Hippo; Sodom; Abila; Basia; Dahna; Kamet; Kemet; Kimet; Zion;
Fenno; Nords; Ezo; Sinic; Nazi; Gaul; Prussia; Vichy; Urals; Eire; Finn; Pole; Korea; Korean;
Koreans; Virgin Islands; Chosun; Joseon; Georgia Caucasus; Congo Basin; Congo River; Democratic
Republic; Republic of Korea Army; Pacific Islands; Cook; Windward Islands; Leeward Islands;
Indies; Orient; Levant; Arabia; Holy Land; Murray; Eyre; Rosario; Waterloo; Madeira; Savoy;
Austerlitz; Brunswick; Frankfort; Hanover; Constantine; Alexandria; Nasser; Thebes; Toledo;
Cordoba; Valencia; Orleans; Lorraine; Chablis; Birmingham; Richmond; Rochester; Portland;
Lawrence; Austin; Columbus; Cleveland; Dakota; Virginia; Memphis; Arcadia; Argos; Ithaca;
Olympus; Rhodes; Delphi; Corinth; Antioch; Medina; Sana; Salisbury; Kimberley; Vladimir;
Molotov; Zealand; Hague; Arno; Riviera; Piedmont; Livonia; Timor; Sian; Volta; Tasman;
Lusitania; Abdullah; Hassan; Hussein; Santa Cruz; Sierra Nevada; Columbia River; La Laguna;
Republic of Dominica; Western Sahara; Spanish Sahara; El Aaium; Georgia Proper; Central African
"""
)

# Codes in the file that are not in COUNTRIES are ignored: historic states (USR/SUN Soviet
# Union, DDR, CSK, SCG, YUG, KRJ), the fictional KNT (Kinakuta), IGO/IMG groups, "---".
# CAMEO codes renamed to ISO 3166 alpha-3 (XKX is the user-assigned code the EU and IMF use
# for Kosovo); FRN is a typo in the file for FRA.
RENAME = {"KSV": "XKX", "TMP": "TLS", "FRN": "FRA"}
# Second halves of six-letter codes that mark a dependent territory (USAPRI, PSEGZA, ...).
TERRITORY_SUFFIXES = _words(
    """
ANT ASM FLK FRO GIB GLP GRL GUF GUM GZA IMY MSR MTQ NCL NIU PCN PRI PYF SHN SRP TKL VGB VIR WLF
"""
)

# Tokens kept upper case (acronyms); any token with a digit or an inner dot is kept too.
ACRONYMS = _words(
    """
US USA UK UAE DRC PRC DPRK ROK FYROM CIA FBI NSA DEA FSB GRU PLA IDF IRGC CCP DGSE GCHQ HKSAR
KRG ANSF SPLA CPPCC POTUS USAID FEMA NASA ISI JD USSR RSFSR SVR MI5 MI6 EEUU DC NZ LPDR RDTL
SRVN DROC USVI JFK LBJ FDR DCRI
"""
)
PARTICLES = _words(
    """
al el ul ud bin ibn bint de da do dos das di du del della der den van von la le y e of the and
upon on es sur
"""
)

# Common English given names and surnames: a file person name made only of one of each
# ("John Williams", "David Thompson") names too many other people to be a country signal.
COMMON_GIVEN = _words("""
John James Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel
Matthew Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy
Ronald Edward Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott
Brandon Benjamin Samuel Frank Gregory Raymond Alexander Patrick Jack Dennis Jerry Tyler Aaron
Henry Peter Douglas Adam Nathan Zachary Walter Kyle Harold Carl Arthur Gerald Roger Keith
Jeremy Lawrence Terry Sean Christian Albert Joe Ethan Austin Jesse Willie Billy Bruce Bryan
Ralph Roy Jordan Eugene Wayne Louis Alan Russell Philip Phillip Bobby Johnny Bradley Howard
Fred Victor Martin Ernest Clifford Stanley Leonard Hugh Colin Derek Neil Ian Graham Trevor
Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Nancy Lisa Betty
Margaret Sandra Ashley Kimberly Emily Donna Michelle Dorothy Carol Amanda Melissa Deborah
Stephanie Rebecca Sharon Laura Cynthia Kathleen Amy Shirley Angela Helen Anna Brenda Pamela
Nicole Emma Samantha Katherine Christine Debra Rachel Catherine Carolyn Janet Ruth Maria
Heather Diane Virginia Julie Joyce Victoria Kelly Christina Lauren Joan Evelyn Judith Megan
Cheryl Andrea Hannah Martha Jacqueline Frances Gloria Ann Teresa Kathryn Sara Janice Jean
Alice Madison Doris Abigail Julia Judy Grace Denise Amber Marilyn Beverly Danielle Theresa
Sophia Marie Diana Brittany Natalie Isabella Charlotte Rose Alexis Kayla Marion Sue June
Ronnie Jim Tim Tom Bill Bob Mike Dave Steve Chris Tony Ken Don Ron Dan Pat Sam Ben Nick
""")
COMMON_SURNAMES = _words("""
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips
Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers
Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson
Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo
Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell
Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson
Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant Herrera
Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez
McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns
Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt
Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer
Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant
Dunn Kelley Spencer Hawkins Arnold Pierce Hansen Peters Santos Hart Bradley Knight Elliott
Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews Ray Berry Perkins Hoffman
Johnston Matthews Pena Richards Willis Carpenter Lawrence Sandoval Baldwin Clarke Lynch
Douglas Barrett Boyce Marsh Lowe Ward Wood Sealy Toppin Jones Lashley Walcott Blackett
""")

# Very common Arabic given names (and name parts): a person name made only of these
# ("Mohammed Ali", "Abdul Rahim") fits many people across several countries.
COMMON_ARABIC = _words("""
Mohammed Muhammad Mohamed Mohammad Muhammed Mohamad Ahmed Ahmad Ali Hassan Hasan Hussein
Husain Hussain Abdul Abdel Abd Abdullah Abdallah Omar Umar Ibrahim Mahmoud Mahmud Khalid
Khaled Yusuf Youssef Yousef Ismail Said Saeed Salim Salem Rahim Karim Kareem Rahman Aziz
Hamid Hamad Mustafa Mostafa Osman Othman Uthman Jamal Kamal Nasser Nasir Sultan Saleh Salih
Abu Bin Ibn Al
""")

# --------------------------------------------------------------------------- parsing


@dataclass
class Group:
    """One entry of the actor file: phrases (root first) and its bracketed codes."""

    line: int
    phrases: list[str]
    codes: list[str]
    person: bool


def parse_actor_file(path: Path) -> list[Group]:
    """TABARI .actor format: a root line, '+' synonyms, then '[CODE dates]' lines.

    A root that has no codes yet before the next root is merged into it (the file does this
    for spelling variants such as DMITRY_MEDVEDEV_ / DMITR_MEDVEDEV_).
    """
    groups: list[Group] = []
    current: Group | None = None
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, raw in enumerate(text.splitlines(), 1):
        body, _, comment = raw.partition("#")
        line = body.strip()
        if not line:
            continue
        codes = re.findall(r"\[([^\]]*)\]", line)
        phrase = re.sub(r"\[[^\]]*\]", "", line).strip()
        if line.startswith("+"):
            if current is not None:
                current.phrases.append(phrase[1:].strip())
        elif line.startswith("["):
            if current is not None:
                current.codes.extend(codes)
        else:
            if current is None or current.codes:
                current = Group(number, [], [], False)
                groups.append(current)
            current.phrases.append(phrase)
            current.codes.extend(codes)
            current.person = current.person or "CountryInfo" in comment
    return groups


def code_of(raw: str) -> str:
    return raw.split()[0] if raw.split() else ""


# --------------------------------------------------------------------------- phrases


def _case_piece(piece: str, first: bool) -> str:
    if piece.upper() in ACRONYMS or any(c.isdigit() for c in piece) or "." in piece.strip("."):
        return piece.upper()
    low = piece.lower()
    if low in PARTICLES and not first:
        return low
    if "'" in piece:
        head, _, tail = piece.partition("'")
        if len(head) == 1 and head.lower() in "dl" and not first:
            return f"{head.lower()}'{tail.capitalize()}"
        if tail.lower() == "s":
            return f"{head.capitalize()}'s"
        return f"{head.capitalize()}'{tail.capitalize()}"
    return piece.capitalize()


def file_phrase(raw: str) -> str | None:
    """TABARI phrase (upper case, '_' for spaces) to natural case, or None if unusable."""
    text = raw.replace("_", " ").strip()
    if not text or not re.fullmatch(r"[A-Za-z0-9 .'\-]+", text):
        return None  # parentheses, commas, broken bytes, stray '+' or '?': not running text
    words = text.split()
    if words and words[0].upper() == "THE":
        words = words[1:]
    out = []
    for i, word in enumerate(words):
        pieces = word.split("-")
        out.append("-".join(_case_piece(p, i == 0 and j == 0) for j, p in enumerate(pieces)))
    phrase = " ".join(out)
    return phrase if phrase and phrase[0].isalpha() else None


def plain_words(phrase: str) -> list[str]:
    return [w for w in re.split(r"[\s\-]+", phrase) if w]


# --------------------------------------------------------------------------- derivation


@dataclass(frozen=True)
class Entry:
    phrase: str
    code: str
    kind: str
    hand: bool  # from the hand tables: exempt from the word-list filters


def table(text: str) -> list[tuple[str, list[str]]]:
    rows = []
    for line in text.strip().splitlines():
        code, _, rest = line.partition("|")
        rows.append((code, [p.strip() for p in rest.split(";") if p.strip()]))
    return rows


def _split(cell: str) -> list[str]:
    return [p for p in cell.split(";") if p]


def country_table() -> dict[str, tuple[str, list[str], list[str]]]:
    out = {}
    for line in COUNTRIES.strip().splitlines():
        code, name, demonyms, capitals = line.split("|")
        out[code] = (name, _split(demonyms), _split(capitals))
    return out


def hand_entries(countries: dict[str, tuple[str, list[str], list[str]]]) -> list[Entry]:
    entries: list[Entry] = []
    for code, (name, demonyms, capitals) in countries.items():
        entries.append(Entry(name, code, "name", True))
        entries += [Entry(d, code, "demonym", True) for d in demonyms]
        entries += [Entry(c, code, "capital", True) for c in capitals]
    for source, kind in (
        (EXTRA_NAMES, "name"),
        (EXTRA_PLACES, "alias"),
        (LEADERS, "leader"),
        (INSTITUTIONS, "institution"),
    ):
        for code, phrases in table(source):
            entries += [Entry(p, code, kind, True) for p in phrases]
    entries += [Entry(p, "", "block", True) for p in BLOCKS]
    entries += [Entry(p, code, "prefix", True) for p, code in PREFIXES.items()]
    return entries


def _country_code(codes: list[str], known: set[str]) -> str | None:
    """The current country of a group: the last plain 3-letter code, renamed to ISO."""
    for raw in reversed(codes):
        code = RENAME.get(code_of(raw), code_of(raw))
        if len(code) == 3 and code in known:
            return code
    return None


def _actor_country(codes: list[str], known: set[str]) -> str | None:
    """Country of a person or institution: the single current country among its codes."""
    found = set()
    for raw in codes:
        code = code_of(raw)
        prefix = RENAME.get(code[:3], code[:3])
        if prefix in known:
            found.add(prefix)
    return found.pop() if len(found) == 1 else None


INSTITUTION_WORDS = re.compile(
    r"\b(ARMY|FORCES?|COUNCIL|PARTY|ASSEMBLY|CONGRESS|COURT|DEPARTMENT|MINISTRY|AGENCY|"
    r"SERVICE|BUREAU|GUARDS?|BRIGADE|FRONT|MOVEMENT|COALITION|ALLIANCE|DECLARATION|"
    r"OBSERVATORY|INTELLIGENCE|HOUSE|PALACE|STREET|GOVERNMENT|AUTHORITY|UNIVERSITY|TEAM|"
    r"COMMUNITY|COMMISSION|ADMINISTRATION|RESERVE|YARD|HEADQUARTERS|RIFLES|KREMLIN|KNESSET|"
    r"MOSSAD|BET|BUNDESRAT|REICHSTAG|VOLKSKAMMER|SABHA|PESHMERGA|DGSE|ERGENEKON|RIOT|STATE|"
    r"JABHAT|AHRAR|JAISH|JAYSH|GHURABA|TAWHID|SUQOUR|HAZM|MUHAJIRIN|PRESIDENT|SECRETARY|"
    r"MINISTER|AMBASSADOR|REPRESENTATIVE|DIRECTOR|POLITBURO|SOVIET|TANK|FEDERAL|OFFICE)\b"
)


def file_entries(
    groups: list[Group], known: set[str], countries: dict[str, tuple[str, list[str], list[str]]]
) -> list[Entry]:
    entries: list[Entry] = []
    for group in groups:
        codes = [code_of(c) for c in group.codes]
        root_code = _country_code(group.codes, known)
        territory = next((c for c in codes if len(c) == 6 and c[3:] in TERRITORY_SUFFIXES), None)
        if root_code and not group.person:
            name, demonyms, capitals = countries[root_code]
            for i, raw in enumerate(group.phrases):
                phrase = file_phrase(raw)
                if phrase is None:
                    continue
                kind = "alias"
                if i == 0 or phrase == name:
                    kind = "name"
                elif phrase in demonyms:
                    kind = "demonym"
                elif phrase in capitals:
                    kind = "capital"
                entries.append(Entry(phrase, root_code, kind, False))
            continue
        if territory and not group.person:
            code = RENAME.get(territory[:3], territory[:3])
            entries += [
                Entry(p, code, "territory", False) for p in map(file_phrase, group.phrases) if p
            ]
            continue
        code = _actor_country(group.codes, known)
        if code is None:
            continue
        root = group.phrases[0].replace(" ", "_")
        personal = group.person or not INSTITUTION_WORDS.search(root)
        governs = any(c[3:6] == "GOV" for c in codes)
        kind = ("leader" if governs else "person") if personal else "institution"
        entries += [Entry(p, code, kind, False) for p in map(file_phrase, group.phrases) if p]
    return entries


def load_words(path: Path) -> tuple[set[str], set[str]]:
    """Lower-case English words, and every word as spelled (to spot capitalised names)."""
    words = [w.strip() for w in path.read_text(encoding="utf-8").splitlines()]
    words = [w for w in words if w and "'" not in w]
    return {w for w in words if w.islower()}, set(words)


def drop_reason(entry: Entry, lower_words: set[str], all_words: set[str]) -> str | None:
    """Why a file-derived phrase is not precise enough, or None to keep it."""
    words = plain_words(entry.phrase)
    if entry.phrase in DROP:
        return "hand drop list"
    if len(words) == 1 and words[0].replace(".", "").isupper():
        listed = words[0].replace(".", "") in ACRONYMS
        return None if listed else "acronym not in the reviewed list"
    if len(entry.phrase) < 3:
        return "too short"
    if all(w.lower() in lower_words or w.lower() in PARTICLES for w in words):
        return "common English word(s)"
    if entry.kind in ("leader", "person"):
        if len(words) == 1 and (words[0] in all_words or words[0].lower() in all_words):
            return "single-word person name that is a dictionary word or name"
        if len(words) == 1 and len(words[0]) < 5:
            return "short single-word person name"
        if words[0] in COMMON_GIVEN and words[-1] in COMMON_SURNAMES:
            return "common English given name + surname"
        common = COMMON_GIVEN | COMMON_SURNAMES | COMMON_ARABIC
        if len(words) == 2 and all(w.capitalize() in common for w in words):
            return "two common given names"
    return None


def derive(
    actors: Path, words_path: Path
) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str, str, str]]]:
    countries = country_table()
    known = set(countries)
    lower_words, all_words = load_words(words_path)
    hand = hand_entries(countries)
    from_file = file_entries(parse_actor_file(actors), known, countries)

    dropped: list[tuple[str, str, str, str]] = []
    by_phrase: dict[str, list[Entry]] = defaultdict(list)
    for entry in hand:
        by_phrase[entry.phrase].append(entry)
    hand_codes: dict[str, set[str]] = defaultdict(set)
    for entry in hand:
        hand_codes[entry.phrase].add(entry.code)
    for phrase, codes in hand_codes.items():
        if len(codes) > 1:
            raise SystemExit(f"hand tables map {phrase!r} to several countries: {sorted(codes)}")
    for entry in from_file:
        if entry.phrase in hand_codes:
            continue  # the hand tables decide
        reason = drop_reason(entry, lower_words, all_words)
        if reason:
            dropped.append((entry.phrase, entry.code, entry.kind, reason))
            continue
        by_phrase[entry.phrase].append(entry)

    kind_rank = {
        k: i
        for i, k in enumerate(
            [
                "name",
                "demonym",
                "capital",
                "prefix",
                "territory",
                "alias",
                "leader",
                "institution",
                "person",
                "block",
            ]
        )
    }
    rows: list[tuple[str, str, str, str]] = []
    for phrase, entries in by_phrase.items():
        codes = {e.code for e in entries}
        if len(codes) > 1:
            dropped += [(phrase, e.code, e.kind, "names several countries") for e in entries]
            continue
        best = min(entries, key=lambda e: kind_rank[e.kind])
        name = countries[best.code][0] if best.code else ""
        rows.append((phrase, best.code, name, best.kind))
    rows.sort(key=lambda r: (r[1], kind_rank[r[3]], r[0]))
    return rows, sorted(set(dropped))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=Path, required=True)
    parser.add_argument("--words", type=Path, default=Path("/usr/share/dict/american-english"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report", type=Path, help="write dropped phrases and reasons here")
    args = parser.parse_args(argv)
    rows, dropped = derive(args.actors, args.words)
    with args.out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["phrase", "country_code", "country_name", "kind"])
        writer.writerows(rows)
    if args.report:
        with args.report.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(["phrase", "country_code", "kind", "reason"])
            writer.writerows(dropped)
    print(f"wrote {len(rows)} phrases to {args.out}; dropped {len(dropped)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
