-- A small site made by the release before migrations (commit bdbaca0): its `create_all`
-- schema with every index of that release, five users (one per role), five studies with
-- series and events, three reports (a draft, a final, a final with an addendum not yet
-- archived), quarantine, pipeline state, audit events, an import, a research export and the
-- seeded report templates (one edited by the site). Made with that commit's models and
-- `sqlite3 pacs.sqlite3 .dump`; tests/test_migrations.py loads it.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE quarantine (
	id INTEGER NOT NULL, 
	orthanc_id VARCHAR(64) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	study_instance_uid VARCHAR(255) NOT NULL, 
	patient_id VARCHAR(255) NOT NULL, 
	patient_name VARCHAR(324) NOT NULL, 
	modalities VARCHAR(128) NOT NULL, 
	description VARCHAR(256) NOT NULL, 
	instance_count INTEGER NOT NULL, 
	reasons JSON NOT NULL, 
	quarantined_at DATETIME NOT NULL, 
	checked_at DATETIME NOT NULL, 
	resolved_at DATETIME, 
	resolved_by VARCHAR(255), 
	PRIMARY KEY (id), 
	UNIQUE (orthanc_id)
);
INSERT INTO quarantine VALUES(1,'ffffffff-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd','open','1.2.3.4','','Nobody^N','XX','',1,'[{"code": "MISSING_PATIENT_ID", "message": "no patient ID"}]','2026-11-20 08:00:00.000000','2026-11-20 08:00:00.000000',NULL,NULL);
CREATE TABLE pipeline_state (
	"key" VARCHAR(64) NOT NULL, 
	value VARCHAR(255) NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO pipeline_state VALUES('changes_cursor','42');
CREATE TABLE ingest_retries (
	orthanc_id VARCHAR(64) NOT NULL, 
	reason VARCHAR(1024) NOT NULL, 
	attempts INTEGER NOT NULL, 
	failed_at DATETIME NOT NULL, 
	PRIMARY KEY (orthanc_id)
);
INSERT INTO ingest_retries VALUES('eeeeeeee-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd','archive timed out',2,'2026-11-20 08:00:00.000000');
CREATE TABLE users (
	id INTEGER NOT NULL, 
	email VARCHAR(255) NOT NULL, 
	display_name VARCHAR(255) NOT NULL, 
	dicom_name VARCHAR(324) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	password_hash VARCHAR(128) NOT NULL, 
	active BOOLEAN NOT NULL, 
	failed_logins INTEGER NOT NULL, 
	locked_until DATETIME, 
	session_version INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	last_login_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (email)
);
INSERT INTO users VALUES(1,'admin@site.example','Dr Admin','','admin','$2b$12$Z3Z8l810efZC93kkPLRVReznyFM29O8nj5yJfYMguWH2Bc/kH1IiC',1,0,NULL,1,'2026-11-20 08:00:00.000000','2026-11-20 09:00:00.000000');
INSERT INTO users VALUES(2,'radiologist@site.example','Dr Radiologist','','radiologist','$2b$12$nqdVMqgoMqFca1yo6IK1QO4cmEBa.s0Jz8JYPELf5eCL4iKK78eyu',1,0,NULL,1,'2026-11-20 08:00:00.000000','2026-11-20 09:00:00.000000');
INSERT INTO users VALUES(3,'referrer@site.example','Dr Referrer','Referrer^Rita','referrer','$2b$12$M0T0Hc/gBlNCudWeXUfYqOAaf3NlQvjKRQTw3752v3jS2Cjh/t2Cm',1,0,NULL,1,'2026-11-20 08:00:00.000000','2026-11-20 09:00:00.000000');
INSERT INTO users VALUES(4,'manager@site.example','Dr Manager','','manager','$2b$12$R8x7Z87jAmjEY4tDqNk2Le.gJ/.UyStTmZzOeWe0XxG1vHsBHYSqW',1,0,NULL,1,'2026-11-20 08:00:00.000000','2026-11-20 09:00:00.000000');
INSERT INTO users VALUES(5,'researcher@site.example','Dr Researcher','','researcher','$2b$12$70Mq36BaFx1vO.fsxaq9oOQOZHTMWBGLqNa9DrXScfYvjqZPuCdBC',1,0,NULL,1,'2026-11-20 08:00:00.000000','2026-11-20 09:00:00.000000');
CREATE TABLE audit_events (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	user_email VARCHAR(255) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	client_ip VARCHAR(64) NOT NULL, 
	action VARCHAR(64) NOT NULL, 
	object_type VARCHAR(32) NOT NULL, 
	object_id VARCHAR(255) NOT NULL, 
	study_uid VARCHAR(64) NOT NULL, 
	outcome VARCHAR(16) NOT NULL, 
	detail VARCHAR(1024) NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO audit_events VALUES(1,'2026-11-20 08:00:00.000000','admin@site.example','admin','127.0.0.1','login','study','0','1.2.826.0.1.3680043.8.498.1000','success','');
INSERT INTO audit_events VALUES(2,'2026-11-20 08:01:00.000000','radiologist@site.example','radiologist','127.0.0.1','study.view','study','1','1.2.826.0.1.3680043.8.498.1001','success','');
INSERT INTO audit_events VALUES(3,'2026-11-20 08:02:00.000000','referrer@site.example','referrer','127.0.0.1','report.finalize','study','2','1.2.826.0.1.3680043.8.498.1002','success','');
INSERT INTO audit_events VALUES(4,'2026-11-20 08:03:00.000000','manager@site.example','manager','127.0.0.1','login','study','3','1.2.826.0.1.3680043.8.498.1003','success','Ünïcode détail');
INSERT INTO audit_events VALUES(5,'2026-11-20 08:04:00.000000','researcher@site.example','researcher','127.0.0.1','study.view','study','4','1.2.826.0.1.3680043.8.498.1004','success','');
INSERT INTO audit_events VALUES(6,'2026-11-20 08:05:00.000000','admin@site.example','admin','127.0.0.1','report.finalize','study','5','1.2.826.0.1.3680043.8.498.1000','success','');
INSERT INTO audit_events VALUES(7,'2026-11-20 08:06:00.000000','radiologist@site.example','radiologist','127.0.0.1','login','study','6','1.2.826.0.1.3680043.8.498.1001','success','');
INSERT INTO audit_events VALUES(8,'2026-11-20 08:07:00.000000','referrer@site.example','referrer','127.0.0.1','study.view','study','7','1.2.826.0.1.3680043.8.498.1002','denied','');
INSERT INTO audit_events VALUES(9,'2026-11-20 08:08:00.000000','manager@site.example','manager','127.0.0.1','report.finalize','study','8','1.2.826.0.1.3680043.8.498.1003','success','');
INSERT INTO audit_events VALUES(10,'2026-11-20 08:09:00.000000','researcher@site.example','researcher','127.0.0.1','login','study','9','1.2.826.0.1.3680043.8.498.1004','success','');
INSERT INTO audit_events VALUES(11,'2026-11-20 08:10:00.000000','admin@site.example','admin','127.0.0.1','study.view','study','10','1.2.826.0.1.3680043.8.498.1000','success','');
INSERT INTO audit_events VALUES(12,'2026-11-20 08:11:00.000000','radiologist@site.example','radiologist','127.0.0.1','report.finalize','study','11','1.2.826.0.1.3680043.8.498.1001','success','');
CREATE TABLE report_templates (
	id INTEGER NOT NULL, 
	"key" VARCHAR(64) NOT NULL, 
	name VARCHAR(128) NOT NULL, 
	modality VARCHAR(16) NOT NULL, 
	body_part VARCHAR(64) NOT NULL, 
	sections JSON NOT NULL, 
	updated_at DATETIME NOT NULL, 
	updated_by VARCHAR(255) NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE ("key")
);
INSERT INTO report_templates VALUES(1,'generic','Generic','','','{"findings": "Site''s own edited findings."}','2026-11-20 08:00:00.000000','admin@site.example');
INSERT INTO report_templates VALUES(2,'ct-chest','CT chest','CT','CHEST','{"clinical_information": "", "comparison": "None available.", "technique": "Axial CT of the chest from the thoracic inlet to the adrenal glands, with intravenous contrast. Multiplanar reconstructions.", "findings": "Lungs: No consolidation, mass or suspicious nodule. No pleural effusion or pneumothorax.\nAirways: Patent central airways.\nMediastinum: No lymphadenopathy. Heart size normal. No pericardial effusion.\nVessels: Normal calibre thoracic aorta and pulmonary arteries.\nUpper abdomen: Unremarkable.\nBones and soft tissues: No aggressive osseous lesion.", "impression": "No acute cardiopulmonary abnormality."}','2026-11-20 08:00:00.000000','');
INSERT INTO report_templates VALUES(3,'ct-head','CT head','CT','HEAD','{"clinical_information": "", "comparison": "None available.", "technique": "Axial CT of the head without intravenous contrast.", "findings": "Brain parenchyma: No acute infarct, haemorrhage or mass effect. Grey-white matter differentiation preserved.\nVentricles and extra-axial spaces: Normal size. No extra-axial collection.\nMidline: No shift.\nSkull and skull base: No fracture.\nParanasal sinuses and mastoids: Clear.", "impression": "No acute intracranial abnormality."}','2026-11-20 08:00:00.000000','');
INSERT INTO report_templates VALUES(4,'mr-brain','MR brain','MR','BRAIN,HEAD','{"clinical_information": "", "comparison": "None available.", "technique": "Multiplanar multisequence MRI of the brain: sagittal T1, axial T2, FLAIR, DWI/ADC and SWI.", "findings": "No restricted diffusion to suggest acute infarct. No intracranial haemorrhage or mass.\nWhite matter: No significant signal abnormality.\nVentricles and sulci: Normal for age.\nPosterior fossa: Normal.\nMajor intracranial flow voids: Preserved.\nOrbits, sinuses and mastoids: Unremarkable.", "impression": "Normal MRI of the brain."}','2026-11-20 08:00:00.000000','');
INSERT INTO report_templates VALUES(5,'xr-chest','CR/DX chest','CR,DX','CHEST','{"clinical_information": "", "comparison": "None available.", "technique": "PA and lateral chest radiographs.", "findings": "Lungs: Clear. No focal consolidation, pleural effusion or pneumothorax.\nHeart and mediastinum: Cardiomediastinal silhouette within normal limits.\nBones: No acute osseous abnormality.", "impression": "No acute cardiopulmonary process."}','2026-11-20 08:00:00.000000','');
INSERT INTO report_templates VALUES(6,'us-abdomen','US abdomen','US','ABDOMEN','{"clinical_information": "", "comparison": "None available.", "technique": "Real-time grey-scale and colour Doppler ultrasound of the abdomen.", "findings": "Liver: Normal size and echotexture. No focal lesion.\nGallbladder: No stones or wall thickening.\nBile ducts: Not dilated; CBD measures __ mm.\nPancreas: Visualised portions unremarkable.\nSpleen: Normal size.\nKidneys: Normal size and corticomedullary differentiation. No hydronephrosis or calculus.\nAorta: Normal calibre.\nNo free fluid.", "impression": "Normal abdominal ultrasound."}','2026-11-20 08:00:00.000000','');
CREATE TABLE studies (
	id INTEGER NOT NULL, 
	study_instance_uid VARCHAR(64) NOT NULL, 
	orthanc_id VARCHAR(64) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	patient_name VARCHAR(324) NOT NULL, 
	patient_id VARCHAR(64) NOT NULL, 
	patient_birth_date DATE, 
	patient_sex VARCHAR(16) NOT NULL, 
	accession_number VARCHAR(64) NOT NULL, 
	study_date DATE, 
	study_datetime DATETIME, 
	modality VARCHAR(16) NOT NULL, 
	modalities VARCHAR(128) NOT NULL, 
	description VARCHAR(256) NOT NULL, 
	body_part VARCHAR(64) NOT NULL, 
	referring_physician VARCHAR(324) NOT NULL, 
	institution VARCHAR(128) NOT NULL, 
	priority VARCHAR(16) NOT NULL, 
	ordered_at DATETIME, 
	received_at DATETIME NOT NULL, 
	ingested_at DATETIME NOT NULL, 
	removed_at DATETIME, 
	series_count INTEGER NOT NULL, 
	instance_count INTEGER NOT NULL, 
	warnings JSON NOT NULL, 
	assignee_id INTEGER, 
	PRIMARY KEY (id), 
	UNIQUE (study_instance_uid), 
	UNIQUE (orthanc_id), 
	FOREIGN KEY(assignee_id) REFERENCES users (id)
);
INSERT INTO studies VALUES(1,'1.2.826.0.1.3680043.8.498.1000','00000000-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd','received','Müller^Jürgen','PID0000','1950-01-02','M','ACC00000','2026-11-10','2026-11-10 09:30:00.000000','CT','CT','Chest','CHEST','Referrer^Rita','General Hospital','ROUTINE',NULL,'2026-11-20 08:00:00.000000','2026-11-20 08:01:00.000000',NULL,1,3,'[]',NULL);
INSERT INTO studies VALUES(2,'1.2.826.0.1.3680043.8.498.1001','00000001-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd','in_progress','Smith^John','PID0001','1951-01-02','F','ACC00001','2026-11-11','2026-11-11 09:30:00.000000','MR','MR','Chest','CHEST','Referrer^Rita','General Hospital','STAT',NULL,'2026-11-20 09:00:00.000000','2026-11-20 09:01:00.000000',NULL,1,4,'[]',2);
INSERT INTO studies VALUES(3,'1.2.826.0.1.3680043.8.498.1002','00000002-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd','final','Søren^Kierkegaard','PID0002','1952-01-02','M','ACC00002','2026-11-12','2026-11-12 09:30:00.000000','CR','CR,SR','Chest','CHEST','Referrer^Rita','General Hospital','URGENT',NULL,'2026-11-20 10:00:00.000000','2026-11-20 10:01:00.000000',NULL,1,5,'[]',2);
INSERT INTO studies VALUES(4,'1.2.826.0.1.3680043.8.498.1003','00000003-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd','amended','O''Brien^Siobhan','PID0003','1953-01-02','F','ACC00003','2026-11-13','2026-11-13 09:30:00.000000','US','US,SR','Chest','CHEST','Referrer^Rita','General Hospital','ROUTINE',NULL,'2026-11-20 11:00:00.000000','2026-11-20 11:01:00.000000',NULL,1,6,'[]',2);
INSERT INTO studies VALUES(5,'1.2.826.0.1.3680043.8.498.1004','00000004-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd','received','Tanaka^Yuki','PID0004','1954-01-02','M','ACC00004','2026-11-14','2026-11-14 09:30:00.000000','DX','DX','Chest','CHEST','Referrer^Rita','General Hospital','ROUTINE',NULL,'2026-11-20 12:00:00.000000','2026-11-20 12:01:00.000000',NULL,1,7,'[{"code": "MISSING_ACCESSION_NUMBER", "message": "no accession"}]',NULL);
CREATE TABLE api_tokens (
	id INTEGER NOT NULL, 
	user_id INTEGER NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	revoked_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE, 
	UNIQUE (token_hash)
);
INSERT INTO api_tokens VALUES(1,2,'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','2026-11-20 08:00:00.000000','2026-11-20 20:00:00.000000',NULL);
CREATE TABLE imports (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	user_id INTEGER, 
	actor VARCHAR(255) NOT NULL, 
	source VARCHAR(16) NOT NULL, 
	counts JSON NOT NULL, 
	summary JSON NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(user_id) REFERENCES users (id)
);
INSERT INTO imports VALUES(1,'2026-11-20 08:00:00.000000',1,'admin@site.example','portal','{"stored": 3, "rejected": 1}','{"files": []}');
CREATE TABLE research_exports (
	id INTEGER NOT NULL, 
	requester_id INTEGER, 
	requested_by VARCHAR(255) NOT NULL, 
	purpose VARCHAR(2048) NOT NULL, 
	cohort JSON NOT NULL, 
	profile VARCHAR(255) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	reason VARCHAR(1024) NOT NULL, 
	decided_by VARCHAR(255) NOT NULL, 
	requested_at DATETIME NOT NULL, 
	decided_at DATETIME, 
	started_at DATETIME, 
	finished_at DATETIME, 
	salt VARCHAR(64) NOT NULL, 
	total_instances INTEGER NOT NULL, 
	processed_instances INTEGER NOT NULL, 
	exported_instances INTEGER NOT NULL, 
	excluded_instances INTEGER NOT NULL, 
	withheld_instances INTEGER NOT NULL, 
	destination VARCHAR(1024) NOT NULL, 
	report JSON NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(requester_id) REFERENCES users (id)
);
INSERT INTO research_exports VALUES(1,5,'researcher@site.example','Study of chests','{"modality": "CT"}','basic','done','','admin@site.example','2026-11-20 08:00:00.000000','2026-11-20 08:00:00.000000','2026-11-20 08:00:00.000000','2026-11-20 08:00:00.000000','ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss',3,3,3,0,0,'/x.zip','{"excluded": []}');
CREATE TABLE series (
	id INTEGER NOT NULL, 
	study_id INTEGER NOT NULL, 
	series_instance_uid VARCHAR(64) NOT NULL, 
	modality VARCHAR(16) NOT NULL, 
	series_number INTEGER, 
	description VARCHAR(256) NOT NULL, 
	body_part VARCHAR(64) NOT NULL, 
	instance_count INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (study_id, series_instance_uid), 
	FOREIGN KEY(study_id) REFERENCES studies (id) ON DELETE CASCADE
);
INSERT INTO series VALUES(1,1,'1.2.826.0.1.3680043.8.498.1000.1','CT',1,'Axial','CHEST',3);
INSERT INTO series VALUES(2,2,'1.2.826.0.1.3680043.8.498.1001.1','MR',1,'Axial','CHEST',4);
INSERT INTO series VALUES(3,3,'1.2.826.0.1.3680043.8.498.1002.1','CR',1,'Axial','CHEST',5);
INSERT INTO series VALUES(4,4,'1.2.826.0.1.3680043.8.498.1003.1','US',1,'Axial','CHEST',6);
INSERT INTO series VALUES(5,5,'1.2.826.0.1.3680043.8.498.1004.1','DX',1,'Axial','CHEST',7);
CREATE TABLE study_events (
	id INTEGER NOT NULL, 
	study_id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	user_email VARCHAR(255) NOT NULL, 
	detail VARCHAR(512) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(study_id) REFERENCES studies (id) ON DELETE CASCADE
);
INSERT INTO study_events VALUES(1,1,'2026-11-20 08:00:00.000000','received','','');
INSERT INTO study_events VALUES(2,2,'2026-11-20 09:00:00.000000','received','','');
INSERT INTO study_events VALUES(3,2,'2026-11-20 13:00:00.000000','report_started','radiologist@site.example','');
INSERT INTO study_events VALUES(4,3,'2026-11-20 10:00:00.000000','received','','');
INSERT INTO study_events VALUES(5,3,'2026-11-20 13:00:00.000000','report_started','radiologist@site.example','');
INSERT INTO study_events VALUES(6,3,'2026-11-20 14:00:00.000000','final','radiologist@site.example','');
INSERT INTO study_events VALUES(7,4,'2026-11-20 11:00:00.000000','received','','');
INSERT INTO study_events VALUES(8,4,'2026-11-20 13:00:00.000000','report_started','radiologist@site.example','');
INSERT INTO study_events VALUES(9,4,'2026-11-20 14:00:00.000000','final','radiologist@site.example','');
INSERT INTO study_events VALUES(10,5,'2026-11-20 12:00:00.000000','received','','');
CREATE TABLE reports (
	id INTEGER NOT NULL, 
	study_id INTEGER NOT NULL, 
	"key" VARCHAR(32) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	version INTEGER NOT NULL, 
	sections JSON NOT NULL, 
	template_key VARCHAR(64) NOT NULL, 
	author_id INTEGER, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	updated_by VARCHAR(255) NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (study_id), 
	FOREIGN KEY(study_id) REFERENCES studies (id) ON DELETE CASCADE, 
	UNIQUE ("key"), 
	FOREIGN KEY(author_id) REFERENCES users (id)
);
INSERT INTO reports VALUES(1,2,'00000000000000000000000000000001','draft',3,'{"findings": "Findings 1: no acute abnormality.", "impression": "Normal."}','generic',2,'2026-11-20 08:00:00.000000','2026-11-20 08:00:00.000000','radiologist@site.example');
INSERT INTO reports VALUES(2,3,'00000000000000000000000000000002','final',3,'{"findings": "Findings 2: no acute abnormality.", "impression": "Normal."}','generic',2,'2026-11-20 08:00:00.000000','2026-11-20 08:00:00.000000','radiologist@site.example');
INSERT INTO reports VALUES(3,4,'00000000000000000000000000000003','final',3,'{"findings": "Findings 3: no acute abnormality.", "impression": "Normal."}','generic',2,'2026-11-20 08:00:00.000000','2026-11-20 08:00:00.000000','radiologist@site.example');
CREATE TABLE export_pseudonyms (
	id INTEGER NOT NULL, 
	export_id INTEGER NOT NULL, 
	patient_key VARCHAR(512) NOT NULL, 
	pseudonym VARCHAR(64) NOT NULL, 
	shift_days INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (export_id, patient_key), 
	FOREIGN KEY(export_id) REFERENCES research_exports (id) ON DELETE CASCADE
);
INSERT INTO export_pseudonyms VALUES(1,1,'PID0000','PSEUDO-1',42);
CREATE TABLE report_documents (
	id INTEGER NOT NULL, 
	report_id INTEGER NOT NULL, 
	sequence INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	sections JSON NOT NULL, 
	addendum_text TEXT NOT NULL, 
	signed_by VARCHAR(255) NOT NULL, 
	signer_name VARCHAR(324) NOT NULL, 
	signed_at DATETIME NOT NULL, 
	series_instance_uid VARCHAR(64) NOT NULL, 
	sop_instance_uid VARCHAR(64) NOT NULL, 
	archived_at DATETIME, 
	attempts INTEGER NOT NULL, 
	last_error VARCHAR(1024) NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (report_id, sequence), 
	FOREIGN KEY(report_id) REFERENCES reports (id) ON DELETE CASCADE, 
	UNIQUE (sop_instance_uid)
);
INSERT INTO report_documents VALUES(1,2,1,'final','{"findings": "Findings 2: no acute abnormality.", "impression": "Normal."}','','radiologist@site.example','Rad^Rachel','2026-11-20 14:00:00.000000','2.25.21','2.25.22','2026-11-20 14:00:02.000000',1,'');
INSERT INTO report_documents VALUES(2,3,1,'final','{"findings": "Findings 3: no acute abnormality.", "impression": "Normal."}','','radiologist@site.example','Rad^Rachel','2026-11-20 14:00:00.000000','2.25.31','2.25.32',NULL,1,'archive down');
INSERT INTO report_documents VALUES(3,3,2,'addendum','{"findings": "Findings 3: no acute abnormality.", "impression": "Normal."}','Addendum: compared with prior.','radiologist@site.example','Rad^Rachel','2026-11-20 15:00:00.000000','2.25.331','2.25.332',NULL,0,'');
CREATE INDEX ix_quarantine_state ON quarantine (state);
CREATE INDEX ix_audit_events_user_email ON audit_events (user_email);
CREATE INDEX ix_audit_events_at ON audit_events (at);
CREATE INDEX ix_audit_events_action ON audit_events (action);
CREATE INDEX ix_audit_events_study_uid ON audit_events (study_uid);
CREATE INDEX ix_studies_assignee_id ON studies (assignee_id);
CREATE INDEX ix_studies_status_received ON studies (status, received_at);
CREATE INDEX ix_studies_patient_name ON studies (patient_name);
CREATE INDEX ix_studies_status ON studies (status);
CREATE INDEX ix_studies_patient_name_nocase ON studies (patient_name COLLATE NOCASE, status);
CREATE INDEX ix_studies_given_name_nocase ON studies (substr(patient_name, instr(patient_name, '^') + 1) COLLATE NOCASE, status);
CREATE INDEX ix_studies_modality_status_received ON studies (modality, status, received_at);
CREATE INDEX ix_studies_patient_id_nocase ON studies (patient_id COLLATE NOCASE, status);
CREATE INDEX ix_studies_patient_id ON studies (patient_id);
CREATE INDEX ix_studies_assignee_status_received ON studies (assignee_id, status, received_at);
CREATE INDEX ix_studies_study_datetime ON studies (study_datetime, id);
CREATE INDEX ix_studies_accession_number ON studies (accession_number);
CREATE INDEX ix_studies_priority_status_received ON studies (priority, status, received_at);
CREATE INDEX ix_studies_accession_nocase ON studies (accession_number COLLATE NOCASE, status);
CREATE INDEX ix_studies_study_date_status ON studies (study_date, status);
CREATE INDEX ix_studies_removed_at ON studies (removed_at);
CREATE INDEX ix_studies_ingested_at ON studies (ingested_at);
CREATE INDEX ix_api_tokens_user_id ON api_tokens (user_id);
CREATE INDEX ix_imports_at ON imports (at);
CREATE INDEX ix_imports_user_id ON imports (user_id);
CREATE INDEX ix_research_exports_requester_id ON research_exports (requester_id);
CREATE INDEX ix_research_exports_state ON research_exports (state);
CREATE INDEX ix_study_events_study_at ON study_events (study_id, at);
CREATE INDEX ix_reports_status ON reports (status);
CREATE INDEX ix_report_documents_archived_at ON report_documents (archived_at);
COMMIT;
