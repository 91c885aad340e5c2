#!/usr/bin/env python3
"""Writes a learning-platform style CSV for the import benchmark:
email, first_name, last_name and three tag columns (Department, Region,
Job Title), N rows (default 1,000,000).

    python3 benches/generate_people.py 1000000 > /tmp/people.csv
"""
import random
import sys

DEPARTMENTS = ["Sales", "Engineering", "Marketing", "Support", "Finance",
               "Legal", "Operations", "Product", "Design", "People"]
REGIONS = ["EMEA", "APAC", "AMER", "LATAM", "Nordics", "DACH", "UK", "ANZ"]
TITLES = ["Account Executive", "Developer", "Manager", "Director", "Analyst",
          "Engineer", "Designer", "Consultant", "Specialist", "Coordinator",
          "Lead", "Architect", "Associate", "VP", "Intern", "Administrator",
          "Recruiter", "Accountant", "Counsel", "Researcher", "Scientist",
          "Writer", "Editor", "Planner", "Officer"]
FIRST = ["Ana", "Bo", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jo"]
LAST = ["Lima", "Chen", "Diaz", "Khan", "Smith", "Okafor", "Rossi", "Tanaka"]


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = random.Random(7)
    out = sys.stdout
    out.write("email,first_name,last_name,Department,Region,Job Title\n")
    for n in range(rows):
        out.write(f"user{n:07d}@example.com,{rng.choice(FIRST)},{rng.choice(LAST)},"
                  f"{rng.choice(DEPARTMENTS)},{rng.choice(REGIONS)},{rng.choice(TITLES)}\n")


if __name__ == "__main__":
    main()
